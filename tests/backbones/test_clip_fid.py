"""clip_fid backbone vs the clean-fid package's own CLIP-FID code (cleanfid/clip_features.py, cleanfid/utils.py):
same pixels, same unnormalised embedding, on non-square images (random open_clip ViT-B-32 weights, no download)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from tise_bench.backbones.clip_fid import ClipFidBackbone, cleanfid_clip_pixels


@pytest.fixture(scope="module")
def cleanfid_clip():
    """cleanfid.clip_features imports OpenAI's ``clip`` package (not on PyPI) only for ``clip.load``; a stand-in
    module lets its preprocessing and ``CLIP_fx.__call__`` run with our network."""
    sys.modules.setdefault("clip", types.ModuleType("clip"))
    from cleanfid import clip_features, utils

    return clip_features, utils


@pytest.fixture(scope="module")
def bb() -> ClipFidBackbone:
    return ClipFidBackbone(random=True, seed=0, device="cpu")


def _image(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.repeat(rng.integers(0, 256, (h // 5 + 1, w // 5 + 1, 3)), 5, 0), 5, 1)[:h, :w]
    return Image.fromarray(a.astype(np.uint8))


@pytest.mark.parametrize("hw", [(150, 260), (300, 90)])
def test_pixels_and_embedding_are_clean_fids(bb, cleanfid_clip, hw, tmp_path) -> None:
    clip_features, utils = cleanfid_clip
    img = _image(*hw, seed=hw[0])
    path = tmp_path / "x.png"
    img.save(path)
    ds = utils.ResizeDataset([str(path)], mode="clean")  # clean-fid's reader, with CLIP-FID's fn_resize
    ds.fn_resize = clip_features.img_preprocess_clip
    theirs_in = ds[0]  # float [0, 255], (3, 224, 224)
    fx = clip_features.CLIP_fx.__new__(clip_features.CLIP_fx)  # without clip.load: our network stands in
    fx.model = bb.net
    want = fx(theirs_in).numpy()
    ours_in = bb.preprocess(img)
    assert ours_in.shape == (3, 224, 224)
    norm = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    assert torch.allclose(ours_in, (theirs_in / 255.0 - norm) / std, atol=1e-6, rtol=0)
    ours = bb.forward(ours_in[None])["image"]
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5)
    assert abs(float(np.linalg.norm(ours)) - 1.0) > 1e-2  # unnormalised, unlike the clip backbone's "image"


def test_identity_namespace_and_settings(bb) -> None:
    from tise_bench.backbones.clip import ClipBackbone

    clip = ClipBackbone(model="ViT-B-32", random=True, seed=0, device="cpu")
    assert bb.ident == "clip_fid-ViT-B-32-random-seed0" and bb.weights_hash == clip.weights_hash
    assert bb.namespace != clip.namespace and "unnormalised" in bb.preproc_version
    assert bb.settings.quick_gelu and bb.describe()["embedding"] == "encode_image, not L2-normalised"
    img = _image(64, 64, 1)
    a = cleanfid_clip_pixels(img)
    assert torch.allclose(a, clip.preprocess(img), atol=1e-5)  # open_clip's openai transform: same pixels


def test_weight_messages_name_the_blocks_own_keys(tmp_path) -> None:
    """clip.py's weight resolution serves clip_fid, clip_cmmd, aesthetic and the segmenter's CLIP: each message names
    the keys of the block the user set (never ``backbones.clip.``), built by ClipBackbone itself, not rewritten."""
    from tise_bench.backbones.clip import ClipBackbone
    from tise_bench.errors import ConfigError, WeightsNotFoundError

    missing = str(tmp_path / "missing.pt")
    with pytest.raises(WeightsNotFoundError) as e:
        ClipFidBackbone(weights=missing, cache_dir=tmp_path, device="cpu")
    assert "backbones.clip_fid.weights=" in str(e.value) and "backbones.clip." not in str(e.value)
    with pytest.raises(WeightsNotFoundError) as e:
        ClipBackbone(weights=missing, cache_dir=tmp_path, device="cpu", keys="backbones.segmenter.clip_")
    assert "backbones.segmenter.clip_weights=" in str(e.value) and "backbones.clip." not in str(e.value)
    with pytest.raises(ConfigError, match=r"backbones\.segmenter\.clip_model='no-such-net' is not an open_clip"):
        ClipBackbone(model="no-such-net", cache_dir=tmp_path, device="cpu", keys="backbones.segmenter.clip_")
    with pytest.raises(WeightsNotFoundError, match=r"^backbones\.clip\.weights="):  # the clip block's own default
        ClipBackbone(weights=missing, cache_dir=tmp_path, device="cpu")
