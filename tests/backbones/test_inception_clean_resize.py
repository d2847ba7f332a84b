"""backbones.inception.resize=clean: clean-fid's resize (vs the clean-fid package's own function and its formula
written here), fed to torch-fidelity's network unchanged; the default namespace and features are untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cleanfid.resize import build_resizer, make_resizer
from PIL import Image

from tise_bench.backbones import build_backbone
from tise_bench.backbones.clean_resize import clean_resize
from tise_bench.backbones.inception import InceptionBackbone
from tise_bench.comparability import comparability
from tise_bench.errors import ConfigError
from tise_bench.registry import get_metric
from tise_bench.types import MetricValue


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h // 3 + 1, w // 3 + 1, 3))
    return np.repeat(np.repeat(a, 3, 0), 3, 1)[:h, :w].astype(np.uint8) ^ rng.integers(0, 40, (h, w, 3), np.uint8)


def _formula(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """clean-fid resize.py, PIL branch with quantize_after=False, written out."""
    chans = []
    for c in range(3):
        img = Image.fromarray(x[:, :, c].astype(np.float32), mode="F")
        chans.append(np.asarray(img.resize(size, resample=Image.BICUBIC)).clip(0, 255).reshape(size[1], size[0], 1))
    return np.concatenate(chans, axis=2).astype(np.float32)


@pytest.mark.parametrize("hw", [(37, 53), (120, 41), (299, 299)])
def test_clean_resize_equals_clean_fids_function(hw) -> None:
    x = _rgb(*hw, seed=hw[0])
    ours = clean_resize(Image.fromarray(x))
    assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
    np.testing.assert_array_equal(ours, build_resizer("clean")(x))  # the package: make_resizer("PIL", False, ...)
    np.testing.assert_array_equal(ours, _formula(x, (299, 299)))
    assert ours.min() >= 0 and ours.max() <= 255
    assert np.array_equal(ours, np.round(ours)) == (hw == (299, 299))  # float, never re-quantised
    wide = clean_resize(x, (64, 30))  # PIL's (width, height)
    assert wide.shape == (30, 64, 3)
    np.testing.assert_array_equal(wide, make_resizer("PIL", False, "bicubic", (64, 30))(x))


@pytest.fixture()
def nets(fidelity_ckpt, tmp_path) -> tuple[InceptionBackbone, InceptionBackbone]:
    kw = dict(weights=str(fidelity_ckpt), cache_dir=tmp_path, device="cpu")
    return InceptionBackbone(**kw), InceptionBackbone(**kw, resize="clean")


def test_clean_mode_feeds_torch_fidelitys_network_the_clean_pixels(nets) -> None:
    default, clean = nets
    img = Image.fromarray(_rgb(80, 130, seed=3))
    t = clean.preprocess(img)
    assert t.dtype == torch.float32 and t.shape == (3, 299, 299)
    np.testing.assert_array_equal(t.numpy().transpose(1, 2, 0), build_resizer("clean")(np.asarray(img)))
    # on a 299 x 299 image both resizes are the identity: the clean path is torch-fidelity's network exactly
    sq = Image.fromarray(_rgb(299, 299, seed=4))
    a, b = default.forward(default.preprocess(sq)[None]), clean.forward(clean.preprocess(sq)[None])
    for k in ("pool3", "logits_unbiased"):
        np.testing.assert_array_equal(a[k], b[k])
    a, b = default.forward(default.preprocess(img)[None]), clean.forward(t[None])
    assert np.abs(a["pool3"] - b["pool3"]).max() > 1e-3  # a non-square image: the resizes differ
    assert "clean-fid" in str(clean.describe()["resize"]) and "torch-fidelity" in str(default.describe()["resize"])


def test_default_namespace_unchanged_clean_is_its_own(nets, fidelity_ckpt, tmp_path) -> None:
    default, clean = nets
    assert default.preproc_version == "tf1bilinear299-v1"  # every earlier run's cache namespace
    assert default.ident == "inception-v3-compat-tf2015" and clean.ident == "inception-v3-compat-tf2015-clean"
    assert clean.namespace != default.namespace and clean.weights_hash == default.weights_hash
    built = build_backbone(
        "inception",
        {"weights": str(fidelity_ckpt), "resize": "clean"},
        random=False,
        seed=0,
        cache_dir=tmp_path,
        device="cpu",
    )
    assert built.namespace == clean.namespace
    with pytest.raises(ConfigError, match="backbones.inception.resize='lanczos'"):
        InceptionBackbone(weights=str(fidelity_ckpt), cache_dir=tmp_path, device="cpu", resize="lanczos")


def test_fid_comparability_records_the_resize(nets) -> None:
    default, clean = nets
    spec = get_metric("fid")
    mv = MetricValue(value=1.0, n=2, extras={"feature": "inception.pool3"})
    p0, f0 = comparability("fid", spec, {}, mv, {"inception": default})
    p1, f1 = comparability("fid", spec, {}, mv, {"inception": clean})
    assert "clean-fid" not in p0 and "resize=clean-fid PIL bicubic" in p1
    assert f0["backbone.inception"] == default.namespace and f1["backbone.inception"] == clean.namespace
    p_is = comparability("is_star", get_metric("is_star"), {}, mv, {"inception": clean})[0]
    assert "resize=clean-fid" in p_is
