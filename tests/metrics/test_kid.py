"""KID vs torch-fidelity 0.4's ``kid_features_to_metric`` on the same features, from scratch on tiny data, the
registered adapter, its defaults, and a run through the pipeline (tise_bench.evaluate, random backbones)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

import tise_bench
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics import kid as kid_mod
from tise_bench.metrics.kid import kid, mmd2_unbiased, polynomial_kernel
from tise_bench.registry import get_metric

DEFAULT_YAML = Path(tise_bench.__file__).parent / "configs" / "metrics" / "default.yaml"


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(size=(n, d)) + shift)  # non-negative, like pool3 after ReLU + pooling


def _tf(a: np.ndarray, b: np.ndarray, **kw) -> dict:
    return kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), verbose=False, **kw)


@pytest.mark.parametrize("kernel", [{}, {"degree": 2, "gamma": 0.05, "coef0": 0.5}])
def test_kid_equals_torch_fidelity_on_the_same_features(kernel) -> None:
    a, b = _feats(70, 32, 0), _feats(50, 32, 1, shift=1.0)
    ours, std, mmds = kid(a, b, subsets=17, subset_size=25, seed=7, **kernel)
    tf_kw = {f"kid_kernel_poly_{k}": v for k, v in kernel.items()}
    ref = _tf(a, b, kid_subsets=17, kid_subset_size=25, rng_seed=7, **tf_kw)
    assert ours == pytest.approx(ref[KEY_METRIC_KID_MEAN], rel=1e-12, abs=1e-15)
    assert std == pytest.approx(ref[KEY_METRIC_KID_STD], rel=1e-12, abs=1e-15)
    assert len(mmds) == 17 and ours > 0  # shifted distributions: clearly positive
    # The order of the two inputs matters for the draws (generated first, as torch-fidelity's input1)
    swapped = _tf(b, a, kid_subsets=17, kid_subset_size=25, rng_seed=7, **tf_kw)[KEY_METRIC_KID_MEAN]
    assert abs(swapped - ours) > 1e-9


def test_kid_on_float32_features_is_torch_fidelity_up_to_its_float32_kernels() -> None:
    a, b = _feats(60, 64, 2).astype(np.float32), _feats(60, 64, 3, shift=0.1).astype(np.float32)
    ours = kid(a, b, subsets=10, subset_size=30)[0]
    exact = _tf(a.astype(np.float64), b.astype(np.float64), kid_subsets=10, kid_subset_size=30)[KEY_METRIC_KID_MEAN]
    tf32 = _tf(a, b, kid_subsets=10, kid_subset_size=30)[KEY_METRIC_KID_MEAN]
    assert ours == pytest.approx(exact, rel=1e-12)  # float64 kernels: torch-fidelity's value on float64 input
    assert ours == pytest.approx(tf32, rel=1e-3)  # float32 kernels differ by round-off only


def test_kid_from_scratch_on_tiny_data() -> None:
    x = np.array([[0.0, 1.0], [2.0, 0.5], [1.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.5, 3.0], [2.0, 2.0]])
    k = lambda u, v: (u @ v / 2 + 1) ** 3  # noqa: E731  gamma = 1/dim, coef0 = 1, degree 3
    m = 3  # subset_size = N: every subset is a permutation of all rows, and MMD² is permutation-invariant
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    want = xx + yy - 2 * xy
    mean, std, mmds = kid(x, y, subsets=5, subset_size=3)
    assert mean == pytest.approx(want, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(mmds, want, rtol=1e-12)
    kxy = polynomial_kernel(x, y)
    assert kxy[1, 2] == pytest.approx(k(x[1], y[2]), rel=1e-14)
    assert mmd2_unbiased(polynomial_kernel(x, x), kxy, polynomial_kernel(y, y)) == pytest.approx(want, rel=1e-12)
    # identical sets: the unbiased estimate is not 0 (the diagonal is left out) but both sides are symmetric
    assert kid(x, x, subsets=1, subset_size=3)[0] == pytest.approx(
        2 * xx - 2 * sum(k(x[i], x[j]) for i in range(m) for j in range(m)) / (m * m), rel=1e-12
    )


def test_subset_larger_than_a_side_is_refused_like_torch_fidelity() -> None:
    a, b = _feats(10, 8, 0), _feats(6, 8, 1)
    with pytest.raises(ValueError, match="subset_size 8 is larger than the generated \\(10\\) or reference \\(6\\)"):
        kid(a, b, subset_size=8)
    with pytest.raises(ValueError, match="KID subset size"):
        _tf(a, b, kid_subset_size=8)
    with pytest.raises(ValueError, match="finite|NaN"):
        kid(np.full((4, 8), np.nan), b, subset_size=2)


def _ctx(gen: np.ndarray, ref: np.ndarray) -> MetricContext:
    recs = [Record(id=f"r{i}", caption=f"c{i}", reference=f"ref{i}.png") for i in range(len(gen))]
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"g{i}.png", f"s{i}") for i in range(len(gen))],
        gen_features={"inception.pool3": gen},
        ref_features={"inception.pool3": ref},
        ref_records=list(range(len(ref))),
    )


def test_adapter_value_std_params_and_small_sets() -> None:
    gen, ref = _feats(12, 16, 4), _feats(9, 16, 5, shift=0.3)
    spec = get_metric("kid")
    assert (spec.display, spec.higher_is_better, spec.unit, spec.subset) == ("KID", False, "distance", "realism")
    v = spec.compute(_ctx(gen, ref), {"subsets": 6, "subset_size": 5, "seed": 3})
    mean, std, _ = kid(gen, ref, subsets=6, subset_size=5, seed=3)
    assert (v.value, v.std, v.n) == (mean, std, 12)
    assert v.extras["subset_size"] == 5 and v.extras["gamma"] == 1 / 16 and v.extras["n_reference"] == 9
    with pytest.raises(ConfigError) as e:  # torch-fidelity's default subset_size 1000 on 12 / 9 images
        spec.compute(_ctx(gen, ref), {})
    msg = str(e.value)
    assert "subset_size=1000" in msg and "12 generated / 9 reference" in msg and "shrink_subset_size=true" in msg
    shrunk = spec.compute(_ctx(gen, ref), {"subsets": 6, "shrink_subset_size": True})
    assert shrunk.extras["subset_size"] == 9 and shrunk.value == kid(gen, ref, subsets=6, subset_size=9)[0]
    one = spec.compute(_ctx(gen[:1], ref[:1]), {"shrink_subset_size": True})
    assert math.isnan(one.value) and "at least 2" in one.extras["reason"]


def test_requirements_reference_images_and_subset_size() -> None:
    spec = get_metric("kid")
    refs = [Record(id=f"r{i}", caption="c", reference=f"{i}.png") for i in range(5)]
    assert spec.requires(refs, None, {"subset_size": 5}) is None
    assert "fewer than metrics.params.kid.subset_size=1000" in spec.requires(refs, None, {})
    assert spec.requires(refs, None, {"shrink_subset_size": True}) is None
    bare = [Record(id="a", caption="c")]

    class StatsOnly:
        reference_stats = "stats.npz"

    assert "reference_stats cannot" in spec.requires(bare, StatsOnly(), {"subset_size": 2})


def test_defaults_are_torch_fidelitys() -> None:
    yaml = OmegaConf.to_container(OmegaConf.load(DEFAULT_YAML))
    p = get_metric("kid").resolve_params({})  # the parameter dataclass is the one place the defaults live
    tf = {
        "subsets": DEFAULTS["kid_subsets"],
        "subset_size": DEFAULTS["kid_subset_size"],
        "degree": DEFAULTS["kid_kernel_poly_degree"],
        "gamma": DEFAULTS["kid_kernel_poly_gamma"],
        "coef0": DEFAULTS["kid_kernel_poly_coef0"],
        "seed": DEFAULTS["rng_seed"],
    }
    assert {k: p[k] for k in tf} == tf and p["shrink_subset_size"] is False
    assert "kid" not in (yaml.get("params") or {})  # not repeated in the YAML
    assert kid_mod.kid_params({}) == {**tf, "coef0": float(tf["coef0"])}
    assert DEFAULTS["kid_kernel"] == "poly"
    assert "kid" not in yaml["ids"]  # opt-in: the default bag (what every run computes) is unchanged


def test_kid_through_the_pipeline_reads_reference_features(tmp_path, fresh_cache) -> None:
    from helpers import RANDOM_BACKBONES, structured_images

    from tise_bench.backbones import build_backbones
    from tise_bench.features.bank import FeatureBank

    gen = structured_images(tmp_path / "gen", 8, seed=31, size=32)
    ref = structured_images(tmp_path / "ref", 8, seed=32, size=32)
    caps = [f"shapes {i}" for i in range(8)]
    params = {"kid": {"subset_size": 4, "subsets": 20}}
    res = tise_bench.evaluate(
        tmp_path / "gen",
        caps,
        ids=[p.stem for p in gen],
        references=[str(p) for p in ref],
        metrics=["kid"],
        params=params,
        backbones=RANDOM_BACKBONES,
        cache_dir=fresh_cache,
    )
    bank = FeatureBank(build_backbones(RANDOM_BACKBONES, {"inception"}, fresh_cache), fresh_cache)
    f = bank.images([str(p) for p in gen + ref], {"inception": {"pool3"}})
    pool3 = f.features["inception.pool3"]
    want_mean, want_std, _ = kid(pool3[:8], pool3[8:], subsets=20, subset_size=4)
    v = res.metrics["kid"]
    assert v.value == pytest.approx(want_mean, rel=1e-12) and v.std == pytest.approx(want_std, rel=1e-12)
    assert v.n == 8 and res.meta["kid"]["unit"] == "distance" and res.meta["kid"]["direction"] == "lower"
    with pytest.raises(ConfigError, match="kid"):  # explicitly requested without references: refused before work
        tise_bench.evaluate(
            tmp_path / "gen",
            caps,
            ids=[p.stem for p in gen],
            metrics=["kid"],
            params=params,
            backbones=RANDOM_BACKBONES,
            cache_dir=fresh_cache,
        )


@pytest.mark.parametrize("budget", [None, 0])  # None: the Gram-matrix path; 0: recompute from the features
def test_kid_replicator_equals_kid_on_the_resampled_rows(budget):
    from tise_bench.metrics.kid import KidReplicator

    rng = np.random.default_rng(5)
    gen, ref = rng.normal(size=(70, 12)), rng.normal(0.2, 1.0, size=(50, 12))
    p = {"subsets": 6, "subset_size": 20, "degree": 3, "gamma": None, "coef0": 1.0, "seed": 2020}
    rep = KidReplicator(gen, ref, p) if budget is None else KidReplicator(gen, ref, p, budget=budget)
    assert rep.fits is (budget is None)
    assert rep(np.arange(70)) == pytest.approx(kid(gen, ref, **p)[0], rel=1e-10)  # identity = the point value
    for _ in range(3):
        rows = rng.integers(0, 70, 70)  # a bootstrap multiset, duplicates included
        assert rep(rows) == pytest.approx(kid(gen[np.sort(rows)], ref, **p)[0], rel=1e-10, abs=1e-14)
    assert np.isnan(rep(np.arange(10)))  # fewer rows than subset_size
