"""fd_dinov2 and clip_fid: FID's Fréchet function on other features, vs dgm-eval's compute_FD_with_reps / clean-fid's
fid_from_feats (scipy sqrtm, written here from their code) and torch-fidelity's fid_statistics_to_metric on the same
features; the adapters, their replicates, and a run through the pipeline (random backbones)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

import tise_bench
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.metrics import fd
from tise_bench.metrics.fd import frechet_distance_features
from tise_bench.registry import get_metric


def _ref_fd_sqrtm(reps1: np.ndarray, reps2: np.ndarray, eps: float = 1e-6) -> float:
    """dgm-eval dgm_eval/metrics/fd.py compute_FD_with_reps (= clean-fid's fid_from_feats + frechet_distance)."""
    mu1, sigma1 = np.atleast_1d(np.mean(reps1, axis=0)), np.atleast_2d(np.cov(reps1, rowvar=False))
    mu2, sigma2 = np.atleast_1d(np.mean(reps2, axis=0)), np.atleast_2d(np.cov(reps2, rowvar=False))
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + shift


def test_fd_equals_dgm_eval_clean_fid_and_torch_fidelity_on_the_same_features() -> None:
    gen, ref = _feats(60, 24, 0), _feats(80, 24, 1, shift=0.4)
    ours = frechet_distance_features(gen, ref)
    assert ours == pytest.approx(_ref_fd_sqrtm(ref, gen), rel=1e-9)  # dgm-eval: reps1 = train, reps2 = generated
    stats = [{"mu": np.mean(x, axis=0), "sigma": np.cov(x, rowvar=False)} for x in (gen, ref)]
    assert ours == pytest.approx(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID], rel=1e-12)
    # from scratch: 1-D Gaussians, FD = (m1 - m2)^2 + (s1 - s2)^2
    a, b = np.array([[0.0], [2.0], [4.0]]), np.array([[1.0], [2.0]])
    assert frechet_distance_features(a, b) == pytest.approx((2.0 - 1.5) ** 2 + (2.0 - math.sqrt(0.5)) ** 2, rel=1e-12)
    assert frechet_distance_features(gen, gen) == pytest.approx(0.0, abs=1e-8)


def _ctx(key: str, gen: np.ndarray, ref: np.ndarray) -> MetricContext:
    recs = [Record(id=f"r{i}", caption=f"c{i}", reference=f"ref{i}.png") for i in range(len(gen))]
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"g{i}.png", f"s{i}") for i in range(len(gen))],
        gen_features={key: gen},
        ref_features={key: ref},
        ref_records=list(range(len(ref))),
    )


@pytest.mark.parametrize("mid, key", [("fd_dinov2", fd.DINOV2), ("clip_fid", fd.CLIP_FID)])
def test_adapters_value_replicates_and_small_sets(mid, key) -> None:
    spec = get_metric(mid)
    assert (spec.higher_is_better, spec.unit, spec.subset) == (False, "distance", "realism")
    assert {(n.backbone, n.feature, n.role) for n in spec.needs} == {
        (key.split(".")[0], key.split(".")[1], "gen"),
        (key.split(".")[0], key.split(".")[1], "ref"),
    }
    for n in (20, 40):  # n <= d: FidReplicator's low-rank path; n > d: the exact recomputation
        gen, ref = _feats(n, 30, 2).astype(np.float32), _feats(50, 30, 3, shift=0.2).astype(np.float32)
        v = spec.compute(_ctx(key, gen, ref), {})
        # n <= d: the low-rank symmetric eigenproblem (FidReplicator.point), equal up to round-off; else the same code
        assert v.value == pytest.approx(frechet_distance_features(gen, ref), rel=1e-7 if n <= 30 else 1e-12)
        assert v.n == n and v.extras["feature"] == key and v.extras["n_reference"] == 50
        rows = np.arange(n)
        assert v.resample.score(rows) == pytest.approx(v.value, rel=1e-6)  # identity resample: the value (round-off)
        rows = np.random.default_rng(0).integers(0, n, n)
        assert v.resample.score(rows) == pytest.approx(frechet_distance_features(gen[rows], ref), rel=1e-6)
    one = spec.compute(_ctx(key, _feats(1, 30, 4), _feats(5, 30, 5)), {})
    assert math.isnan(one.value) and "at least 2" in one.extras["reason"]
    assert "reference" in spec.requires([Record(id="a", caption="c")], None, {})
    assert spec.requires([Record(id="a", caption="c", reference="r.png")], None, {}) is None


def test_fd_metrics_through_the_pipeline(tmp_path, fresh_cache) -> None:
    from helpers import RANDOM_BACKBONES, structured_images

    from tise_bench.backbones import build_backbones
    from tise_bench.features.bank import FeatureBank

    gen = structured_images(tmp_path / "gen", 6, seed=41, size=40)
    ref = structured_images(tmp_path / "ref", 6, seed=42, size=40)
    caps = [f"shapes {i}" for i in range(6)]
    backbones = {
        **RANDOM_BACKBONES,
        "dinov2": {"model": "vit_small_patch14_dinov2", "image_size": 56},
        "clip_fid": {},
    }
    res = tise_bench.evaluate(
        tmp_path / "gen",
        caps,
        ids=[p.stem for p in gen],
        references=[str(p) for p in ref],
        metrics=["fd_dinov2", "clip_fid"],
        backbones=backbones,
        cache_dir=fresh_cache,
    )
    built = build_backbones(backbones, {"dinov2", "clip_fid"}, fresh_cache)
    f = FeatureBank(built, fresh_cache).images([str(p) for p in gen + ref], {"dinov2": {"cls"}, "clip_fid": {"image"}})
    for mid, key in (("fd_dinov2", fd.DINOV2), ("clip_fid", fd.CLIP_FID)):
        x = f.features[key]
        # 6 rows <= d: FidReplicator.point's low-rank form; the full-d formula adds sqrt(round-off) of the d - 5 (1.5e-6 here)
        # null eigenvalues (test_resampling: test_fid_point_low_rank_is_the_exact_value)
        assert res.metrics[mid].value == pytest.approx(frechet_distance_features(x[:6], x[6:]), rel=1e-5)
        meta = res.meta[mid]
        assert meta["unit"] == "distance" and "not in TISE; follows" in meta["comparability"]["protocol"]
        name = key.split(".")[0]
        assert meta["comparability"][f"backbone.{name}"] == built[name].namespace
        assert meta["comparability"]["reference"].startswith("images:")
    assert torch.is_tensor(torch.as_tensor(f.features[fd.CLIP_FID]))  # plain float arrays in the bank
