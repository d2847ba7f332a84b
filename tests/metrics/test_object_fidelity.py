"""O-FID on TISE's object-classifier pool3 (or a flagged fallback), O-IS / IS* with TISE's split loops
(issue 9 defect 2 and the O-IS protocol), on synthetic features — no networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics.inception import fid_statistics, frechet_distance, inception_score
from tise_bench.registry import get_metric

T_OBJ = 2.1737587451934814  # TISE object_centric_inception_score.py
T_COCO = 0.9091363549232483  # TISE inception_score_star_coco.py


# ---- from-scratch copies of TISE's loops -------------------------------------------------------------------------
def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    e = np.exp(z / t - (z / t).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tise_o_is(preds: np.ndarray, splits: int = 10):
    """object_centric_inception_score.py: contiguous N // splits rows per split, scipy entropy."""
    N = len(preds)
    split_scores = []
    for k in range(splits):
        part = preds[k * (N // splits) : (k + 1) * (N // splits), :]
        py = np.mean(part, axis=0)
        scores = []
        for i in range(part.shape[0]):
            scores.append(entropy(part[i, :], py))
        split_scores.append(np.exp(np.mean(scores)))
    return np.mean(split_scores), np.std(split_scores)


def tise_is_star_coco(preds: np.ndarray, splits: int = 10):
    """inception_score_star_coco.py: contiguous i*N//splits splits, all rows used."""
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


# ---- contexts ----------------------------------------------------------------------------------------------------
def _ctx(gen: dict, ref: dict | None = None, n_samples: int = 12) -> MetricContext:
    recs = [Record(str(i), f"c{i}") for i in range(n_samples)]
    n_crops = next(iter(gen.values())).shape[0]
    gen = {**gen, "crops.owner": np.arange(n_crops) % n_samples}
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(n_samples)],
        gen_features=gen,
        ref_features=ref or {},
    )


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + shift).astype(np.float32)


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*fid_statistics(a), *fid_statistics(b))


def test_o_fid_uses_object_classifier_pool3_when_present():
    inc_g, inc_r = _feats(40, 6, 0), _feats(30, 6, 1, 0.5)
    obj_g, obj_r = _feats(40, 5, 2), _feats(30, 5, 3, 2.0)
    ctx = _ctx({"crops.pool3": inc_g, "crops.objcls_pool3": obj_g}, {"crops.pool3": inc_r, "crops.objcls_pool3": obj_r})
    v = get_metric("o_fid").compute(ctx, {})
    assert v.value == pytest.approx(_fd(obj_g, obj_r), rel=1e-12)
    assert abs(v.value - _fd(inc_g, inc_r)) > 1.0
    assert v.extras["fallback"] is False and v.extras["classifier"] == "tise-coco80-inception_v3"
    assert v.extras["feature"] == "crops.objcls_pool3" and "warning" not in v.extras
    assert v.extras["n_crops"] == 40 and v.extras["n_reference_crops"] == 30


def test_o_fid_fallback_is_flagged_like_o_is():
    inc_g, inc_r = _feats(40, 6, 0), _feats(30, 6, 1, 0.5)
    ctx = _ctx({"crops.pool3": inc_g, "crops.logits_unbiased": _feats(40, 9, 4)}, {"crops.pool3": inc_r})
    f = get_metric("o_fid").compute(ctx, {})
    s = get_metric("o_is").compute(ctx, {})
    assert f.value == pytest.approx(_fd(inc_g, inc_r), rel=1e-12)
    for v in (f, s):
        assert v.extras["fallback"] is True and "inception-v3-compat" in v.extras["classifier"]
        assert "backbones.object_classifier.weights" in v.extras["warning"]
    assert f.extras["classifier"] == s.extras["classifier"]
    one_sided = _ctx({"crops.pool3": inc_g, "crops.objcls_pool3": _feats(40, 5, 2)}, {"crops.pool3": inc_r})
    with pytest.raises(KeyError, match="reference crops|generated crops only"):
        get_metric("o_fid").compute(one_sided, {})


@pytest.mark.parametrize("n", [53, 60])
def test_o_is_default_is_tises_split_loop(n: int):
    rng = np.random.default_rng(n)
    z = (3 * rng.normal(size=(n, 80))).astype(np.float32)
    ctx = _ctx({"crops.objcls_logits": z, "crops.logits_unbiased": _feats(n, 9, 1)})
    want_mean, want_std = tise_o_is(_softmax(z.astype(np.float64), T_OBJ))
    v = get_metric("o_is").compute(ctx, {})  # default split_mode: tise
    assert v.value == pytest.approx(want_mean, rel=1e-10) and v.std == pytest.approx(want_std, rel=1e-8)
    assert v.extras["split_mode"] == "tise" and v.extras["splits"] == 10
    assert v.extras["n_crops_used"] == 10 * (n // 10) and v.n == n
    tf = get_metric("o_is").compute(ctx, {"split_mode": "torch_fidelity"})
    assert tf.value == pytest.approx(inception_score(z, temperature=T_OBJ)[0], rel=1e-12)
    assert abs(tf.value - v.value) > 1e-6 and tf.extras["split_mode"] == "torch_fidelity"


def test_o_is_tise_mode_needs_as_many_crops_as_splits_and_modes_are_validated():
    z = np.random.default_rng(0).normal(size=(7, 80))
    v = get_metric("o_is").compute(_ctx({"crops.objcls_logits": z, "crops.logits_unbiased": z}), {})
    assert math.isnan(v.value) and "7 crops for 10 splits" in v.extras["reason"]
    with pytest.raises(ConfigError, match="split_mode"):
        get_metric("o_is").compute(_ctx({"crops.objcls_logits": z, "crops.logits_unbiased": z}), {"split_mode": "x"})


def test_is_star_tise_split_mode_equals_tise_coco_loop():
    rng = np.random.default_rng(5)
    z = (3 * rng.normal(size=(57, 1008))).astype(np.float32)
    recs = [Record(str(i), "c") for i in range(57)]
    ctx = MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(57)],
        gen_features={"inception.logits_unbiased": z},
    )
    want_mean, want_std = tise_is_star_coco(_softmax(z.astype(np.float64), T_COCO))
    v = get_metric("is_star").compute(ctx, {"split_mode": "tise"})
    assert v.value == pytest.approx(want_mean, rel=1e-10) and v.std == pytest.approx(want_std, rel=1e-8)
    assert get_metric("is_star").compute(ctx, {}).value == v.value  # TISE's loop is the default (one place)
    d = get_metric("is_star").compute(ctx, {"split_mode": "torch_fidelity"})
    assert d.extras["split_mode"] == "torch_fidelity" and abs(d.value - v.value) > 1e-6
