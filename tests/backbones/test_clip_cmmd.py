"""The CMMD CLIP backbone: the reference's preprocessing (google-research cmmd/io_util.py + embedding.py) checked
against PIL / torchvision on non-square images, its defaults, the seeded random variant, the cache namespace, a
local weights file, and the fail-fast offline error. A tiny open_clip architecture with a 336 px input stands in
for ViT-L-14-336 (same code path, milliseconds instead of minutes on CPU)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import open_clip
from open_clip import factory as oc_factory
from open_clip import pretrained as oc_pretrained
from tise_bench.backbones import build_backbones
from tise_bench.backbones.clip_cmmd import ClipCmmdBackbone, ClipCmmdConfig, cmmd_pixels, cmmd_preprocess
from tise_bench.backbones.registry import get_backbone
from tise_bench.errors import ConfigError, WeightsNotFoundError

TINY = "tise-tiny-cmmd-test"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 336, "layers": 1, "width": 32, "head_width": 16, "patch_size": 48},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# OpenAI CLIP normalisation, as scenic's clip.normalize_image and HF's CLIPImageProcessor use it
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY, TINY_CFG)
    tag = {"url": "", "hf_hub": "tise-test/tiny-cmmd/", "mean": OPENAI_MEAN, "std": OPENAI_STD}
    monkeypatch.setitem(
        oc_pretrained._PRETRAINED,
        TINY,
        {"openai": {**tag, "interpolation": "bicubic", "resize_mode": "shortest", "quick_gelu": True}},
    )
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))  # an empty hub cache
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip for URL downloads: empty too
    return TINY


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    """Non-square, with structure near the borders (so a wrong crop offset shows)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    a[:, : w // 5] = (250, 10, 10)
    a[: h // 4, :] = (10, 10, 240)
    return Image.fromarray(a)


def _normalise(t: torch.Tensor) -> torch.Tensor:
    return T.Normalize(OPENAI_MEAN, OPENAI_STD)(t)


@pytest.mark.parametrize("size", [(99, 64), (64, 131), (100, 60)])
def test_center_crop_then_pil_bicubic_resize_as_the_reference(size) -> None:
    img = _image(*size)
    w, h = img.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)  # io_util: floor
    want = np.asarray(img.crop(box).resize((336, 336), resample=Image.BICUBIC)).astype(np.float32) / 255.0
    got = cmmd_pixels(img, 336, "center")
    assert got.shape == (336, 336, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    t = cmmd_preprocess(img, 336, OPENAI_MEAN, OPENAI_STD, "center")
    np.testing.assert_allclose(t.numpy(), _normalise(T.functional.to_tensor(want)).numpy(), rtol=0, atol=1e-6)
    # torchvision's CenterCrop rounds the offset ((99 - 64) / 2 = 17.5 -> 18), the reference floors it (17): equal
    # only where the difference of the sides is even
    tv = T.Compose([T.CenterCrop(side), T.Resize((336, 336), interpolation=T.InterpolationMode.BICUBIC)])(img)
    same = np.array_equal(np.asarray(tv), np.asarray(img.crop(box).resize((336, 336), resample=Image.BICUBIC)))
    assert same == ((max(w, h) - side) % 2 == 0)


def test_no_crop_is_a_squashing_pil_bicubic_resize_not_open_clips_transform() -> None:
    img = _image(120, 70, seed=1)
    tv = T.Compose([T.Resize((336, 336), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(), _normalise])(img)
    got = cmmd_preprocess(img, 336, OPENAI_MEAN, OPENAI_STD, "none")
    assert got.shape == (3, 336, 336)
    np.testing.assert_allclose(got.numpy(), tv.numpy(), rtol=0, atol=1e-6)  # PIL bicubic (antialiased) either way
    oc = open_clip.image_transform(336, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)  # shortest + centre crop
    assert float((oc(img) - got).abs().max()) > 0.1
    assert float((cmmd_preprocess(img, 336, OPENAI_MEAN, OPENAI_STD, "center") - got).abs().max()) > 0.1
    gray = img.convert("L")  # the reference tiles grayscale to 3 channels, as convert("RGB") does
    np.testing.assert_array_equal(cmmd_pixels(gray, 336, "none"), cmmd_pixels(gray.convert("RGB"), 336, "none"))
    with pytest.raises(ConfigError, match="backbones.clip_cmmd.crop='middle'"):
        cmmd_pixels(img, 336, "middle")


def test_defaults_are_the_references_model_and_tag() -> None:
    cfg = get_backbone("clip_cmmd").parse({})
    assert cfg == ClipCmmdConfig()
    assert (cfg.model, cfg.pretrained, cfg.crop, cfg.weights, cfg.random) == (
        "ViT-L-14-336",
        "openai",
        "center",
        None,
        False,
    )
    # the tag is the OpenAI ViT-L/14@336px checkpoint the reference's README names
    pc = oc_pretrained.get_pretrained_cfg("ViT-L-14-336", "openai")
    assert pc["url"].endswith("/ViT-L-14-336px.pt") and tuple(pc["mean"]) == OPENAI_MEAN
    assert open_clip.get_model_config("ViT-L-14-336")["vision_cfg"]["image_size"] == 336


def test_random_variant_is_seeded_marked_and_its_own_namespace(tiny, tmp_path) -> None:
    kw = dict(model=tiny, random=True, cache_dir=tmp_path, device="cpu")
    a, b, c = ClipCmmdBackbone(seed=0, **kw), ClipCmmdBackbone(seed=0, **kw), ClipCmmdBackbone(seed=1, **kw)
    none = ClipCmmdBackbone(seed=0, crop="none", **kw)
    assert a.is_random and a.describe()["random_weights"] is True and "random-seed0" in a.ident
    assert a.ident == f"clip_cmmd-{tiny}-random-seed0" and a.image_size == 336 and a.amp_capable is False
    assert a.weights_hash == b.weights_hash != c.weights_hash and a.namespace == b.namespace != c.namespace
    assert a.namespace != none.namespace and "cropcenter" in a.namespace and "cropnone" in none.namespace
    assert a.preproc_version.startswith("cmmd336-cropcenter-pilbicubic-norm") and "-qgelu" in a.preproc_version
    d = a.describe()
    assert d["crop"] == "center" and d["mean"] == list(OPENAI_MEAN) and d["quick_gelu"] is True
    img = _image(90, 50, seed=2)
    x = a.preprocess(img)
    np.testing.assert_array_equal(x.numpy(), cmmd_preprocess(img, 336, OPENAI_MEAN, OPENAI_STD, "center").numpy())
    emb = a.forward(torch.stack([x, none.preprocess(img)]))["image"]
    assert emb.shape == (2, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(emb, b.forward(torch.stack([x, none.preprocess(img)]))["image"])
    # the clip backbone of the same architecture is another namespace (other preprocessing)
    from tise_bench.backbones.clip import ClipBackbone

    assert ClipBackbone(model=tiny, random=True, seed=0, cache_dir=tmp_path, device="cpu").namespace != a.namespace


def test_built_from_the_config_group_under_backbones_random(tiny, tmp_path) -> None:
    cfg = {"random": True, "seed": 3, "device": "cpu", "clip_cmmd": {"model": tiny, "crop": "none"}}
    bb = build_backbones(cfg, {"clip_cmmd"}, tmp_path)["clip_cmmd"]
    assert isinstance(bb, ClipCmmdBackbone) and bb.is_random and bb.crop == "none" and "random-seed3" in bb.ident
    with pytest.raises(ConfigError, match=r"backbones\.clip_cmmd\.crp .*Did you mean 'crop'"):
        build_backbones({"random": True, "clip_cmmd": {"crp": "none"}}, {"clip_cmmd"}, tmp_path)
    with pytest.raises(ConfigError, match="backbones.clip_cmmd.crop='square'"):
        ClipCmmdBackbone(model=tiny, crop="square", random=True, cache_dir=tmp_path, device="cpu")


def test_local_weights_file_is_real_and_hashed(tiny, tmp_path) -> None:
    torch.manual_seed(5)
    sd = open_clip.create_model(tiny, pretrained=None).state_dict()
    path = tmp_path / "cmmd-clip.pt"
    torch.save(sd, path)
    bb = ClipCmmdBackbone(model=tiny, pretrained="openai", weights=str(path), cache_dir=tmp_path, device="cpu")
    assert bb.is_random is False and bb.weights_path == str(path)
    assert (
        bb.weights_hash == hashlib.sha256(path.read_bytes()).hexdigest() and bb.ident == f"clip_cmmd-{tiny}-cmmd-clip"
    )
    assert all(torch.equal(bb.net.state_dict()[k], v) for k, v in sd.items())
    with pytest.raises(WeightsNotFoundError, match=r"backbones\.clip_cmmd\.weights=.*missing\.pt does not exist"):
        ClipCmmdBackbone(model=tiny, weights=str(tmp_path / "missing.pt"), cache_dir=tmp_path, device="cpu")


def test_real_default_weights_offline_fail_fast_naming_what_to_provide(tiny, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as e:
        ClipCmmdBackbone(cache_dir=tmp_path, device="cpu")  # ViT-L-14-336 / openai, nothing cached
    assert time.perf_counter() - t < 10  # no network retries, no model built
    msg = str(e.value)
    assert "ViT-L-14-336/openai" in msg and "not cached and the network is unreachable" in msg
    assert "backbones.clip_cmmd.weights=/path/to/checkpoint" in msg and "backbones.clip." not in msg
    assert "timm/vit_large_patch14_clip_336.openai" in msg  # where it was looked for
