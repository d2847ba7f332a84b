"""Mixed precision: fp16 autocast only on CUDA, only for CLIP and the detector, in its own cache namespace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import RANDOM_BACKBONES
from tise_bench.backbones import build_backbones
from tise_bench.backbones.base import ImageBackbone
from tise_bench.backbones.clip import ClipBackbone
from tise_bench.backbones.detector import DetectorBackbone
from tise_bench.backbones.inception import InceptionBackbone


class _Tiny(ImageBackbone):
    name, ident, weights_hash, preproc_version, provides = "tiny", "tiny", "0" * 64, "v1", ("x",)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return torch.zeros(3, 2, 2)

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": batch.flatten(1)}


def test_only_clip_and_detector_may_use_fp16():
    assert ClipBackbone.amp_capable and DetectorBackbone.amp_capable
    assert not InceptionBackbone.amp_capable  # IS/FID keep fp32 parity with torch-fidelity


def test_fp16_features_live_in_their_own_namespace():
    bb = _Tiny()
    fp32 = bb.namespace
    bb.amp = True
    assert bb.namespace == fp32 + "-amp16" and bb.describe()["amp_fp16"] is True


def test_amp_is_ignored_on_cpu(session_cache):
    on = build_backbones({**RANDOM_BACKBONES, "amp": True}, {"clip", "inception"}, session_cache)
    off = build_backbones({**RANDOM_BACKBONES, "amp": False}, {"clip", "inception"}, session_cache)
    for name in on:
        assert on[name].amp is False and on[name].namespace == off[name].namespace


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_clip_on_cuda_matches_fp32(session_cache):
    cfg = {**RANDOM_BACKBONES, "device": "cuda"}
    amp = build_backbones({**cfg, "amp": True}, {"clip"}, session_cache)["clip"]
    fp32 = build_backbones({**cfg, "amp": False}, {"clip"}, session_cache)["clip"]
    assert amp.amp and not fp32.amp and amp.namespace != fp32.namespace
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(4)]
    x = torch.stack([amp.preprocess(im) for im in imgs])
    a, b = amp.forward(x)["image"], fp32.forward(x)["image"]
    assert (a * b).sum(-1).min() > 0.999  # unit vectors: cosine between the fp16 and fp32 embeddings
