"""IS / IS* / FID vs torch-fidelity 0.4 on random features, plus the registered adapters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.metrics.inception import (
    fid_statistics,
    frechet_distance,
    inception_score,
)
from tise_bench.registry import get_metric


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix + shift).astype(np.float32)


def _logits(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (3.0 * rng.normal(size=(n, 1008))).astype(np.float32)


def test_fid_matches_torch_fidelity() -> None:
    a, b = _feats(200, 64, 0), _feats(200, 64, 1, shift=0.3)
    mu1, s1 = fid_statistics(a)
    mu2, s2 = fid_statistics(b)
    assert mu1.dtype == np.float64 and s1.shape == (64, 64)
    ours = frechet_distance(mu1, s1, mu2, s2)
    ref = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert ours == pytest.approx(ref["frechet_inception_distance"], rel=1e-6)
    assert ours > 1.0  # the shifted set is far away; a zero would signal a broken formula


def test_fid_closed_form_and_identity() -> None:
    # Diagonal Gaussians: d² = |Δμ|² + Σ (√a − √b)²
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    mu, s = fid_statistics(_feats(100, 16, 3))
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8


def test_fid_statistics_match_numpy_float64() -> None:
    x = _feats(50, 8, 4)
    mu, s = fid_statistics(x)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(s, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)


def test_fid_errors_name_shapes_and_bad_rows() -> None:
    mu1, s1 = np.zeros(64), np.eye(64)
    with pytest.raises(ValueError, match=r"generated mu \(64,\).*reference mu \(2048,\)"):
        frechet_distance(mu1, s1, np.zeros(2048), np.eye(2048), names=("generated", "reference"))
    x = _feats(20, 8, 5).astype(np.float64)
    x[[3, 7], 2] = np.nan
    x[11, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 of 20 rows"):
        fid_statistics(x)
    with pytest.raises(ValueError, match="at least 2"):
        fid_statistics(x[:1])


@pytest.mark.parametrize("n,splits", [(200, 10), (203, 10), (40, 3)])
def test_is_matches_torch_fidelity(n: int, splits: int) -> None:
    z = _logits(n, n)
    mean, std, scores = inception_score(z, splits=splits)
    ref = isc_features_to_metric(torch.from_numpy(z), splits=splits, shuffle=True, rng_seed=2020)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-9)
    assert len(scores) == splits and mean > 1.5


def test_is_star_is_is_on_scaled_logits_and_differs() -> None:
    z = _logits(120, 7).astype(np.float64)
    t = 0.9091363549232483  # TISE inception_score_star_coco.py: tf.div(logits, tf.constant(0.9091363549232483))
    star = inception_score(z, temperature=t)
    plain_scaled = inception_score(z / t)
    assert star[0] == pytest.approx(plain_scaled[0], rel=1e-12)
    assert star[1] == pytest.approx(plain_scaled[1], rel=1e-9)
    assert abs(star[0] - inception_score(z)[0]) > 1e-3


def test_is_small_n_lowers_splits_and_seed_matters() -> None:
    z = _logits(4, 9)
    mean, std, scores = inception_score(z, splits=10)
    assert len(scores) == 4 and scores == pytest.approx([1.0] * 4)  # one sample per split → KL 0
    z = _logits(50, 10)
    assert inception_score(z, seed=1)[2] != inception_score(z, seed=2)[2]
    assert inception_score(z, seed=1)[0] == inception_score(z, seed=1)[0]
    with pytest.raises(ValueError, match="temperature"):
        inception_score(z, temperature=0.0)


def _ctx(gen: dict[str, np.ndarray], ref_stats: tuple[np.ndarray, np.ndarray] | None = None) -> MetricContext:
    n = next(iter(gen.values())).shape[0]
    recs = [Record(id=str(i), caption=f"c{i}") for i in range(n)]
    samples = [Sample(record_index=i, k=0, path=f"{i}.png", sha="x") for i in range(n)]
    fn = (lambda key: ref_stats) if ref_stats is not None else None
    return MetricContext(subset="realism", records=recs, samples=samples, gen_features=gen, ref_stats_fn=fn)


def test_registered_is_is_star_fid() -> None:
    z = _logits(60, 11)
    ctx = _ctx({"inception.logits_unbiased": z})
    v = get_metric("is").compute(ctx, {})
    assert v.value == pytest.approx(inception_score(z)[0]) and v.n == 60 and v.extras["temperature"] == 1.0
    s = get_metric("is_star").compute(ctx, {"splits": 5})  # TISE's contiguous splits by default (split_mode tise)
    t = 0.9091363549232483  # TISE's COCO IS* temperature, pinned literally (tests/test_published_constants.py)
    assert s.extras["temperature"] == t and s.extras["splits"] == 5 and s.extras["split_mode"] == "tise"
    assert s.value == pytest.approx(inception_score(z, temperature=t, splits=5, shuffle=False)[0])
    s2 = get_metric("is_star").compute(ctx, {"temperature": 2.0})
    assert s2.extras["temperature"] == 2.0 and s2.value < v.value  # softer predictions → lower IS
    spec = get_metric("fid")
    assert not spec.higher_is_better and spec.display == "FID" and get_metric("is_star").display == "IS*"
    gen, ref = _feats(80, 32, 12), _feats(90, 32, 13, shift=0.5)
    stats = fid_statistics(ref)
    f = spec.compute(_ctx({"inception.pool3": gen}, stats), {})
    assert f.value == pytest.approx(frechet_distance(*fid_statistics(gen), *stats), rel=1e-12) and f.n == 80
    with pytest.raises(ValueError, match="generated mu"):
        spec.compute(_ctx({"inception.pool3": gen}, fid_statistics(_feats(90, 16, 14))), {})


def test_o_is_entropy_is_scipy_entropy_bit_for_bit():
    """O-IS's per-split KL (TISE: ``scipy.stats.entropy(p_i, mean(part))``) without scipy's per-call wrapper: the same
    float64 values, bit for bit, also for saturated softmaxes (zeros in p)."""
    from scipy.stats import entropy

    from tise_bench.metrics.inception import _scipy_entropy_rows

    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 10.0, 500.0):  # 500: many probabilities underflow to exactly 0
        z = rng.normal(size=(37, 1000)) * scale
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        q = p.mean(axis=0)[None, :]
        assert np.array_equal(_scipy_entropy_rows(p, q), entropy(p, q, axis=1))
