"""Locally made checkpoints in the real formats of the libraries' downloads (no network, no real weights)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from tise_bench.backbones.detector import ultralytics_guard
from tise_bench.backbones.inception import random_inception_weights


@pytest.fixture(scope="session")
def fidelity_ckpt(tmp_path_factory, session_cache) -> Path:
    """A state dict of torch-fidelity's FeatureExtractorInceptionV3 (the format of its released file): a copy of
    the session's calibrated random Inception file (features that do not collapse; drawing and calibrating
    another seed cost ~20 s), at another path, so the loader hashes and reads it as a file of its own."""
    out = tmp_path_factory.mktemp("fid-w") / "weights-inception-local.pth"
    shutil.copyfile(random_inception_weights(session_cache), out)  # the session cache's file: no new draw
    return out


@pytest.fixture(autouse=True)
def fidelity_ckpt_stands_for_the_published_file(fidelity_ckpt, monkeypatch):
    """The real Inception is checked against the sha256 in torch-fidelity's file name; here the locally made
    checkpoint stands in for that file (tests/backbones/test_weights_safety.py checks the real prefix)."""
    import hashlib

    import tise_bench.backbones.inception as inception

    digest = hashlib.sha256(fidelity_ckpt.read_bytes()).hexdigest()
    monkeypatch.setattr(inception, "PUBLISHED_SHA256_PREFIX", digest[:8])


@pytest.fixture(scope="session")
def yolo_ckpt(tmp_path_factory) -> Path:
    """A yolov8n built from its yaml, saved in ultralytics' checkpoint format ({'model': fp16 module, ...})."""
    out = tmp_path_factory.mktemp("yolo") / "yolov8n.pt"
    with ultralytics_guard(out.parent):
        import ultralytics
        from ultralytics.nn.tasks import DetectionModel

        from tise_bench.backbones.detector_random import coco80_names

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
        model.names = coco80_names()
        torch.save(
            {
                "model": copy.deepcopy(model).half(),
                "ema": None,
                "train_args": {},
                "date": "2023-01-01",
                "version": ultralytics.__version__,
            },
            out,
        )
    return out


@pytest.fixture(scope="session")
def tise_objcls_ckpt(tmp_path_factory) -> Path:
    """TISE's object-classifier format: torchvision inception_v3 state dict with AuxLogits.fc = Linear(768, 80)
    and fc = Linear(2048, 80) (object_fidelity/O-IS/object_centric_inception_score.py), seeded default init."""
    from torchvision.models import inception_v3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, num_classes=1000)
        net.AuxLogits.fc = torch.nn.Linear(768, 80)
        net.fc = torch.nn.Linear(2048, 80)
    out = tmp_path_factory.mktemp("objcls") / "inceptionv3_fine_to_with_80_coco_classes.pth"
    torch.save(net.state_dict(), out)
    return out
