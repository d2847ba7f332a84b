"""Issue 9, defect 3: backbones.object_classifier.weights=<file> is reachable from the command line (it failed
with "unknown backbone 'object_classifier'"). A locally made checkpoint in TISE's format (torchvision
inception_v3 with AuxLogits.fc = Linear(768, 80) and fc = Linear(2048, 80), as object_centric_inception_score.py
builds it) is given with backbones=random; O-IS and O-FID then use it, not the flagged fallback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch


def _tise_classifier(path) -> str:
    from torchvision.models import inception_v3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.AuxLogits.fc = torch.nn.Linear(768, 80)
        net.fc = torch.nn.Linear(2048, 80)
    torch.save(net.state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_object_classifier_weights_from_the_cli(tmp_path, session_cache):
    ckpt = tmp_path / "inceptionv3_fine_to_with_80_coco_classes.pth"
    sha = _tise_classifier(ckpt)
    cache = tmp_path / "cache"  # the session's random weights files, an empty feature cache: the subprocess
    for sub in ("weights", "weights-hashes"):  # does not build the random Inception again
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, cache / sub)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TISE_OFFLINE="1",
        HOME=str(tmp_path / "home"),
        TORCH_HOME=str(tmp_path / "torch"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        TISE_CACHE_DIR=str(cache),
    )
    args = [
        "backbones=random",
        "backbones.device=cpu",
        "model=demo",
        "data.n_prompts=3",
        "data.image_size=64",
        "progress=false",
        "metrics.ids=[o_is,o_fid]",
        "backbones.detector.imgsz=64",
        "backbones.detector.max_crops=2",
        f"backbones.object_classifier.weights={ckpt}",
    ]
    p = subprocess.run(
        [sys.executable, "-m", "tise_bench", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "results" / "demo" / "faithful" / "metrics.json").read_text())
    clf = res["backbones"]["object_classifier"]
    assert clf["weights_hash"] == sha and clf["random_weights"] is False
    assert clf["features"] == ["logits", "pool3"] and clf["weights"] == ckpt.name
    o_is, o_fid = res["metrics"]["o_is"], res["metrics"]["o_fid"]
    assert o_is["fallback"] is False and "warning" not in o_is and o_is["temperature"] == 2.1737587451934814
    assert o_is["n"] >= 2 and o_is["value"] is not None and o_fid["value"] is not None  # crops went through it
    assert o_fid["fallback"] is False and o_fid["feature"] == "crops.objcls_pool3"
    assert res["backbones"]["inception"]["random_weights"] is True  # the others stay random
