"""CLIP score conventions, RefCLIPScore, category means, pairwise softmax, and the registered adapters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics.clip import (
    category_means,
    clip_score_from_cos,
    pairwise_softmax_success,
    ref_clip_score,
)
from tise_bench.registry import get_metric

COS = np.array([-0.5, -0.01, 0.0, 0.2, 0.31, 0.9, 1.0])


@pytest.mark.parametrize(
    "name,formula",
    [
        ("clipscore", lambda c: 2.5 * max(c, 0.0)),
        ("torchmetrics", lambda c: 100.0 * c),  # per sample; the set mean is clamped (test_clip_reference.py)
        ("cosine", lambda c: c),
        ("unit", lambda c: min(max((c + 1) / 2, 0.0), 1.0)),
    ],
)
def test_conventions_match_hand_formulas(name: str, formula) -> None:
    np.testing.assert_allclose(clip_score_from_cos(COS, name), [formula(c) for c in COS], rtol=0, atol=1e-15)


def test_unknown_convention_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="clipscore.*torchmetrics.*cosine.*unit"):
        clip_score_from_cos(COS, "hessel")


def test_ref_clip_score_vs_scratch_and_zero() -> None:
    rng = np.random.default_rng(0)
    a = 2.5 * np.maximum(rng.uniform(-0.2, 0.5, 50), 0)
    b = rng.uniform(-0.3, 0.9, 50)
    want = []
    for x, y in zip(a, b):
        y = max(y, 0.0)
        want.append(0.0 if x == 0 or y == 0 else 2 / (1 / x + 1 / y))
    with np.errstate(all="raise"):
        got = ref_clip_score(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert ref_clip_score(np.array([0.0]), np.array([-1.0]))[0] == 0.0


def test_category_means() -> None:
    means, mom = category_means(np.array([1.0, 3.0, 10.0, 5.0]), ["a", "a", "b", None])
    assert means == {"a": 2.0, "b": 10.0} and mom == 6.0  # not the sample mean (14/3)


def test_pairwise_softmax_success_vs_loop() -> None:
    rng = np.random.default_rng(1)
    img, t, c = (rng.normal(size=(40, 16)) for _ in range(3))
    t[:5] = img[:5]  # some clear successes
    got = pairwise_softmax_success(img, t, c, logit_scale=100.0, threshold=0.6)
    want = []
    for i in range(40):
        ci = [float(np.dot(img[i], v[i]) / np.linalg.norm(img[i]) / np.linalg.norm(v[i])) for v in (t, c)]
        e = [math.exp(100.0 * x - 100.0 * max(ci)) for x in ci]
        want.append(e[0] / sum(e) > 0.6)
    assert got.tolist() == want and 0 < sum(want) < 40
    # margin exactly 0 → p = 0.5 → not above 0.6
    assert not pairwise_softmax_success(img[:1], t[:1], t[:1], 100.0)[0]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _setup(prefix: str = "") -> tuple[MetricContext, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    recs = [
        Record(id="a", caption="a dog", category="animal", ref_captions=("a puppy", "a cat")),
        Record(id="b", caption="a car", category="vehicle"),
        Record(id="c", caption="a cow", category="animal", ref_captions=("a bull",)),
    ]
    samples = [
        Sample(0, 0, "a_0.png", "x"),
        Sample(0, 1, "a_1.png", "x"),
        Sample(1, 0, "b.png", "x"),
        Sample(2, 0, "c.png", "x"),
    ]
    params = {"prefix": prefix}
    texts = list(
        dict.fromkeys(get_metric("clip_score").texts(recs, params) + get_metric("ref_clip_score").texts(recs, params))
    )
    text_feats = {t: v for t, v in zip(texts, _unit(rng.normal(size=(len(texts), 8))))}
    img = 3.0 * rng.normal(size=(4, 8))  # unnormalised on purpose
    ref_img = rng.normal(size=(2, 8))
    ctx = MetricContext(
        subset="realism",
        records=recs,
        samples=samples,
        gen_features={"clip.image": img},
        ref_features={"clip.image": ref_img},
        ref_records=[2, 0],
        text_features=text_feats,
        text_truncated={texts[0]},
    )
    return ctx, img, ref_img


def test_clip_score_adapter() -> None:
    ctx, img, _ = _setup()
    cap = np.stack([ctx.text_features[c] for c in ["a dog", "a dog", "a car", "a cow"]])
    cos = (_unit(img) * cap).sum(1)
    v = get_metric("clip_score").compute(ctx, {"convention": "torchmetrics"})  # torchmetrics: no prefix
    np.testing.assert_allclose(v.per_sample, 100 * cos, rtol=1e-12)
    assert v.value == pytest.approx(max(100 * cos.mean(), 0)) and v.n == 4
    assert v.extras["mean_cosine"] == pytest.approx(cos.mean()) and v.extras["prefix"] == ""
    assert v.extras["n_truncated"] == 1 and set(v.extras["per_category"]) == {"animal", "vehicle"}
    animal = max(100 * cos[[0, 1, 3]].mean(), 0)
    assert v.extras["category_mean"] == pytest.approx((animal + max(100 * cos[2], 0)) / 2)
    with pytest.raises(ConfigError):
        get_metric("clip_score").compute(ctx, {"convention": "nope"})


def test_clip_score_prefix_changes_lookup() -> None:
    ctx, img, _ = _setup(prefix="A photo depicts")
    assert "A photo depicts a dog" in ctx.text_features
    v = get_metric("clip_score").compute(ctx, {"prefix": "A photo depicts"})
    cap = ctx.text(["A photo depicts a dog"])[0]
    assert v.per_sample[0] == pytest.approx(2.5 * max(float(_unit(img)[0] @ cap), 0))
    assert get_metric("clip_score").compute(ctx, {}).value == v.value  # the clipscore default prefix
    with pytest.raises(KeyError, match="a dog"):
        get_metric("clip_score").compute(ctx, {"prefix": ""})  # un-prefixed captions were not collected


def test_ref_clip_score_adapter_skips_records_without_refs() -> None:
    ctx, img, _ = _setup()
    v = get_metric("ref_clip_score").compute(ctx, {"prefix": ""})
    assert v.n == 3 and v.skipped == {"no_ref_captions": 1} and np.isnan(v.per_sample[2])
    t = ctx.text_features
    for j, (cap, refs) in zip([0, 3], [("a dog", ["a puppy", "a cat"]), ("a cow", ["a bull"])]):
        cs = 2.5 * max(float(_unit(img)[j] @ t[cap]), 0)
        rm = max(max(float(t[cap] @ t[r]) for r in refs), 0)
        want = 0.0 if cs == 0 or rm == 0 else 2 * cs * rm / (cs + rm)
        assert v.per_sample[j] == pytest.approx(want, rel=1e-12)
    none = MetricContext(
        subset="realism",
        records=[ctx.records[1]],
        samples=[Sample(0, 0, "b.png", "x")],
        gen_features={"clip.image": img[:1]},
    )
    n = get_metric("ref_clip_score").compute(none, {"prefix": ""})
    assert n.n == 0 and math.isnan(n.value) and n.skipped == {"no_ref_captions": 1} and "reason" in n.extras


def test_clip_i2i_adapter() -> None:
    ctx, img, ref = _setup()
    v = get_metric("clip_i2i").compute(ctx, {})
    # ref rows: row 0 ↔ record 2, row 1 ↔ record 0; record 1 has no reference
    want = {0: (img[0], ref[1]), 1: (img[1], ref[1]), 3: (img[3], ref[0])}
    for j, (a, b) in want.items():
        assert v.per_sample[j] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-12)
    assert v.n == 3 and v.skipped == {"no_reference": 1} and np.isnan(v.per_sample[2])
    assert v.value == pytest.approx(np.nanmean(v.per_sample))
