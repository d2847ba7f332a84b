"""``python -m tise_bench.weights [list|check|fetch]`` (issue 14 item 3) and the run's one-message weights check.

Every cache the loaders look in (torch hub, Hugging Face, ``~/.cache/clip``, ours) points into ``tmp_path``, so the
cache starts empty; nothing here touches the network (the tests run with TISE_OFFLINE=1, tests/conftest.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tise_bench.backbones import aesthetic, dinov2, hps, inception
from tise_bench.backbones.clip import _cached_pretrained
from tise_bench.backbones.detector import asset_url, detector_weights_dir, find_weights
from tise_bench.weights import main

#: the backbones ``metrics=modern`` needs (plus the object classifier: given a file) and what each needs
MODERN = ["metrics=modern", "backbones.object_classifier.weights=/nonexistent/objcls.pth"]


@pytest.fixture()
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch hub, Hugging Face and open_clip caches; our cache is ``tmp_path / "cache"``."""
    from huggingface_hub import constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "cache"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_list_random_backbones_need_no_file(caches, capsys):
    rc, out, _ = run(capsys, "list", "backbones=random", f"paths.cache_dir={caches}")
    assert rc == 0
    assert out.splitlines() == [f"{n}: random weights (no file)" for n in ("clip", "detector", "inception")]
    rc, _, err = run(capsys, "list", "backbone=random")  # the main CLI's strict override check
    assert rc == 2 and "Did you mean backbones?" in err and "fix: pass backbones=random instead" in err


def test_list_names_every_file_with_url_sha256_and_paths(caches, capsys):
    rc, out, _ = run(capsys, "list", *MODERN, f"paths.cache_dir={caches}")
    assert rc == 0
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    assert str(hub).startswith(str(caches.parent))
    # Inception: torch-fidelity's URL, its published sha256 prefix, torch hub's folder
    assert inception.URL in out and "6726825d… (published)" in out and str(hub / inception.FILENAME) in out
    # detector: our cache's folder (never ultralytics' settings folder), ultralytics' release URL
    assert str(detector_weights_dir(caches) / "yolov8x.pt") in out and asset_url("yolov8x.pt", caches) in out
    assert os.environ["YOLO_CONFIG_DIR"] not in out
    # every open_clip checkpoint: each place open_clip's caches are looked in, by the loader's own function
    for model in ("ViT-B-32", "ViT-L-14-336", "ViT-L-14"):
        _, looked, _ = _cached_pretrained(model, "openai")
        assert f"looked in: {'; '.join(looked)}" in out
        assert str(caches.parent / "home" / ".cache" / "clip") in looked[-1]
    # DINOv2: the Hugging Face repo (timm's) and Meta's file in torch hub
    model = dinov2.Dinov2Config.model
    assert f"timm/{model}.{dinov2.TAG}" in out and str(dinov2._meta_path(model)) in out
    # HPS: its Hugging Face file; the aesthetic head: its repository and the key that names it
    assert f"https://huggingface.co/{hps.HF_REPO}/resolve/main/{hps.CHECKPOINTS['v2.1']}" in out
    assert aesthetic.HEAD_FILE in out and aesthetic.HEAD_REPO in out and "backbones.aesthetic.head=" in out
    # the object classifier: the named file, no public download
    assert "/nonexistent/objcls.pth" in out and "no public download" in out
    names = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert sorted(set(names)) == [
        "aesthetic", "clip", "clip_cmmd", "clip_fid", "detector", "dinov2", "hps", "inception", "object_classifier",
    ]  # fmt: skip
    assert out.count("status:    missing") == len(names) == 10  # aesthetic: CLIP + head


def test_listed_paths_are_where_the_loaders_look(caches, capsys):
    """A file put at a listed path is what the loader's own resolver returns (the two cannot drift)."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    det = detector_weights_dir(caches) / "yolov8x.pt"
    meta = dinov2._meta_path(dinov2.Dinov2Config.model)
    clip = caches.parent / "home" / ".cache" / "clip" / "ViT-B-32.pt"
    for p in (hub / inception.FILENAME, det, meta, clip):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"stand-in")
    assert inception.find_real_weights(None) == hub / inception.FILENAME
    assert find_weights("yolov8x.pt", caches) == det
    assert dinov2.find_dinov2_weights(dinov2.Dinov2Config.model, None) == meta
    assert _cached_pretrained("ViT-B-32", "openai")[0] == str(clip)
    _, out, _ = run(capsys, "list", "metrics=modern", f"paths.cache_dir={caches}")
    for p in (det, meta):  # no sha256 published: presence is enough
        assert f"status:    ok: {p}" in out
    # torch-fidelity's file name and OpenAI's URL (checked by open_clip's download) publish the sha256 (prefix)
    assert f"status:    bad: {hub / inception.FILENAME} has sha256 " in out
    assert (
        f"status:    bad: {clip} has sha256 " in out
        and "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af" in out
    )


def test_check_empty_cache_names_every_file_in_one_message(caches, capsys):
    rc, out, err = run(capsys, "check", *MODERN, f"paths.cache_dir={caches}")
    assert rc == 1 and out == ""
    assert err.startswith("10 weights file(s) missing or bad:") and err.count("  - backbones.") == 10
    for name in ("aesthetic", "clip", "clip_cmmd", "clip_fid", "detector", "dinov2", "hps", "inception"):
        assert f"  - backbones.{name}: " in err
    assert "backbones.object_classifier.weights=/nonexistent/objcls.pth does not exist" in err
    assert inception.URL in err and f"copy it to {detector_weights_dir(caches) / 'yolov8x.pt'}" in err
    assert err.count("      fix: ") == 10 and err.count("      url: ") == 10


def test_check_passes_without_published_hash_and_refuses_a_wrong_one(caches, capsys):
    det = detector_weights_dir(caches) / "yolov8x.pt"  # ultralytics publishes no sha256: presence is enough
    det.parent.mkdir(parents=True)
    det.write_bytes(b"a stand-in detector")
    rc, out, _ = run(capsys, "check", "metrics.ids=[soa_c]", f"paths.cache_dir={caches}")
    assert rc == 0 and out.strip() == "all 1 weights file(s) present and valid"
    fake = caches.parent / "inception.pth"  # Inception has a published sha256 prefix: a file with another is bad
    fake.write_bytes(b"not torch-fidelity's weights")
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    rc, _, err = run(capsys, "check", "metrics.ids=[soa_c,fid]", f"backbones.inception.weights={fake}",
                     f"paths.cache_dir={caches}")  # fmt: skip
    assert rc == 1 and err.startswith("1 weights file(s) missing or bad:")
    assert f"{fake} has sha256 {digest[:16]}…, not the published 6726825d…" in err
    assert list((caches / "weights-hashes").glob("*.json"))  # memoised as the loaders memoise it


def test_fetch_offline_fails_fast_naming_every_file(caches, capsys, monkeypatch):
    def no_download(*a, **k):  # torch hub's downloader: must not be reached offline
        raise AssertionError("fetch tried to download while offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setenv("TISE_OFFLINE", "1")
    rc, _, err = run(capsys, "fetch", "metrics.ids=[clip_score,fid,soa_c]", f"paths.cache_dir={caches}")
    assert rc == 1
    assert "offline (TISE_OFFLINE / HF_HUB_OFFLINE is set): nothing downloaded; 3 missing weights file(s)" in err
    for name in ("clip", "detector", "inception"):
        assert f"  - backbones.{name}: " in err
    assert not (Path(torch.hub.get_dir()) / "checkpoints").exists()


def test_run_without_weights_names_every_missing_file_at_once(tmp_path):
    """The main CLI with real backbones and empty caches: one error (exit 2, as every weights error) naming the
    three files the selected metrics need, before any backbone is built."""
    env = {
        **os.environ,
        "TORCH_HOME": str(tmp_path / "torch"),
        "HOME": str(tmp_path / "home"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "TISE_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "tise_bench", "metrics.ids=[clip_score,fid,soa_c]", "data.n_prompts=6",
           "data.image_size=48", "progress=false", f"paths.cache_dir={tmp_path / 'cache'}",
           f"paths.results_dir={tmp_path / 'results'}", "backbones.device=cpu"]  # fmt: skip
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("tise_bench: error: 3 weights file(s) this run needs cannot be loaded:") == 1
    for name in ("clip", "detector", "inception"):
        assert f"  - backbones.{name}: " in p.stderr
    assert str(detector_weights_dir(tmp_path / "cache") / "yolov8x.pt") in p.stderr
    assert "Traceback" not in p.stderr
