"""Precision / recall vs torch-fidelity 0.4's ``prc_features_to_metric`` and density / coverage vs the authors'
``prdc.compute_prdc`` (clovaai/generative-evaluation-prdc, test-only dependency) on the same features; a
from-scratch formula on hand-made points with exact boundary ties; pinned k; small-set errors; the ``feature``
parameter; exact bootstrap replicates (also KID's); a run through the pipeline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from prdc import compute_prdc
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

import tise_bench
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics import prdc as m
from tise_bench.metrics.kid import kid
from tise_bench.registry import Need, get_metric

DEFAULT_YAML = Path(tise_bench.__file__).parent / "configs" / "metrics" / "default.yaml"
IDS = ("precision", "recall", "density", "coverage")


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(size=(n, d)) + shift)  # non-negative, like pool3


def _tf(gen: np.ndarray, ref: np.ndarray, **kw) -> dict:
    return prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), verbose=False, **kw)


@pytest.mark.parametrize(("n_gen", "n_ref", "k"), [(120, 90, None), (60, 150, 5), (40, 40, 1)])
@pytest.mark.parametrize("save_cpu_ram", [False, True])
def test_precision_recall_equal_torch_fidelity(n_gen, n_ref, k, save_cpu_ram) -> None:
    gen, ref = _feats(n_gen, 24, 0, shift=0.3), _feats(n_ref, 24, 1)
    kw = {} if k is None else {"prc_neighborhood": k}
    tf = _tf(gen, ref, save_cpu_ram=save_cpu_ram, prc_batch_size=17, **kw)
    kk = DEFAULTS["prc_neighborhood"] if k is None else k
    p, inside = m.precision(gen, ref, kk)
    r = m.recall(gen, ref, kk)[0]
    # torch-fidelity averages the 0/1 flags in float32: compare the counts
    assert round(tf[KEY_METRIC_PRECISION] * n_gen) == round(p * n_gen) and p == inside.mean()
    assert round(tf[KEY_METRIC_RECALL] * n_ref) == round(r * n_ref)
    assert p == pytest.approx(tf[KEY_METRIC_PRECISION], rel=1e-7) and r == pytest.approx(
        tf[KEY_METRIC_RECALL], rel=1e-7
    )
    assert 0 < p < 1 and 0 < r < 1  # not a degenerate case
    # argument order matters: input1 is the generated set
    swapped = _tf(ref, gen, **kw)
    assert (round(swapped[KEY_METRIC_PRECISION] * n_ref), round(swapped[KEY_METRIC_RECALL] * n_gen)) == (
        round(r * n_ref),
        round(p * n_gen),
    )
    assert round(swapped[KEY_METRIC_PRECISION] * n_ref) != round(p * n_ref) or n_gen == n_ref


@pytest.mark.parametrize(("n_gen", "n_ref", "k"), [(110, 80, 5), (50, 130, 3)])
def test_density_coverage_equal_prdc(n_gen, n_ref, k, capsys) -> None:
    gen, ref = _feats(n_gen, 16, 2, shift=0.2), _feats(n_ref, 16, 3)
    want = compute_prdc(real_features=ref, fake_features=gen, nearest_k=k)
    d, count = m.density(gen, ref, k)
    c = m.coverage(gen, ref, k)[0]
    assert d == pytest.approx(want["density"], rel=1e-12) and c == pytest.approx(want["coverage"], rel=1e-12)
    assert count.sum() / (k * n_gen) == pytest.approx(d, rel=1e-12)
    assert 0 < c < 1 and d > 0


def test_float32_features_agree_up_to_boundary_round_off() -> None:
    gen, ref = _feats(100, 32, 4).astype(np.float32), _feats(100, 32, 5, shift=0.1).astype(np.float32)
    tf = _tf(gen, ref)
    assert abs(m.precision(gen, ref)[0] - tf[KEY_METRIC_PRECISION]) <= 1 / 100 + 1e-7
    assert abs(m.recall(gen, ref)[0] - tf[KEY_METRIC_RECALL]) <= 1 / 100 + 1e-7
    want = compute_prdc(ref, gen, 5)
    assert abs(m.coverage(gen, ref)[0] - want["coverage"]) <= 1 / 100 + 1e-12
    assert abs(m.density(gen, ref)[0] - want["density"]) <= 1 / (5 * 100) + 1e-12


def test_from_scratch_with_exact_boundary_ties() -> None:
    # integer points on a line: every distance is exact in float64, so ties on a ball's boundary are real ties
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, 0.0], [13.0, 0.0]])
    gen = np.array([[0.0, 2.0], [5.0, 0.0], [11.0, 0.0], [24.0, 0.0], [2.0, 0.0], [30.0, 0.0]])

    def radii(x: np.ndarray, k: int) -> np.ndarray:  # k-th nearest other point
        return np.array([sorted(np.linalg.norm(x - p, axis=1))[k] for p in x])

    def brute(k: int, strict: bool) -> dict[str, float]:
        rr, rg = radii(ref, k), radii(gen, k)
        inside = lambda dist, r: dist < r if strict else dist <= r  # noqa: E731
        dist = np.array([[np.linalg.norm(g - x) for x in ref] for g in gen])  # (gen, ref)
        return {
            "precision": np.mean([any(inside(dist[i, j], rr[j]) for j in range(6)) for i in range(6)]),
            "recall": np.mean([any(inside(dist[i, j], rg[i]) for i in range(6)) for j in range(6)]),
            "density": sum(inside(dist[i, j], rr[j]) for i in range(6) for j in range(6)) / (k * 6),
            "coverage": np.mean([inside(dist[:, j].min(), rr[j]) for j in range(6)]),
        }

    le, lt = brute(3, strict=False), brute(5, strict=True)
    assert m.precision(gen, ref, 3)[0] == le["precision"] and m.recall(gen, ref, 3)[0] == le["recall"]
    assert m.density(gen, ref, 5)[0] == lt["density"] and m.coverage(gen, ref, 5)[0] == lt["coverage"]
    # r_3 of ref (13,0) is 11 (its 3rd nearest is (2,0)) and gen (24,0) lies exactly on that ball's boundary,
    # in no other ball: torch-fidelity's "<=" counts it, prdc's "<" (here with k = 3) does not
    assert m.precision(gen, ref, 3)[1].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert m.density(gen, ref, 3)[1][3] == 0 and brute(3, strict=True)["density"] == m.density(gen, ref, 3)[0]
    want = _tf(gen, ref)
    assert (m.precision(gen, ref)[0], m.recall(gen, ref)[0]) == pytest.approx(
        (want[KEY_METRIC_PRECISION], want[KEY_METRIC_RECALL]), rel=1e-7
    )
    prdc4 = compute_prdc(ref, gen, 4)
    assert (m.density(gen, ref, 4)[0], m.coverage(gen, ref, 4)[0]) == (prdc4["density"], prdc4["coverage"])
    # N = k + 1: r_k is the farthest other point; prdc's argpartition(kth=k+1) refuses it, torch-fidelity and
    # this module do not (documented difference)
    with pytest.raises(ValueError, match="out of bounds"):
        compute_prdc(ref, gen, 5)
    assert (m.density(gen, ref)[0], m.coverage(gen, ref)[0]) == (lt["density"], lt["coverage"])


def test_k_defaults_are_pinned_and_opt_in() -> None:
    assert m.PRC_NEIGHBORHOOD == 3 == DEFAULTS["prc_neighborhood"]
    assert m.PRDC_NEAREST_K == 5
    for mid, kname, k in (("precision", "neighborhood", 3), ("recall", "neighborhood", 3)):
        assert get_metric(mid).resolve_params({}) == {kname: k, "feature": "inception.pool3"}
    for mid in ("density", "coverage"):
        assert get_metric(mid).resolve_params({}) == {"nearest_k": 5, "feature": "inception.pool3"}
    yaml = OmegaConf.to_container(OmegaConf.load(DEFAULT_YAML))
    assert not set(IDS) & set(yaml["ids"]) and not set(IDS) & set(yaml.get("params") or {})
    for mid in IDS:
        spec = get_metric(mid)
        assert (spec.higher_is_better, spec.unit, spec.subset) == (True, "score", "realism")


def test_fewer_than_k_plus_1_images_is_a_clear_error() -> None:
    gen, ref = _feats(10, 8, 0), _feats(3, 8, 1)
    with pytest.raises(ValueError, match=r"precision: needs at least k \+ 1 = 4 .* got 10 generated / 3 reference"):
        m.precision(gen, ref)
    with pytest.raises(ValueError, match="coverage: needs at least k \\+ 1 = 6"):
        m.coverage(ref, gen)
    with pytest.raises(ValueError, match="NaN or inf"):
        m.recall(np.full((5, 8), np.nan), gen)
    with pytest.raises(ValueError, match="columns"):
        m.density(gen, _feats(10, 9, 1))
    for mid, kname in (("precision", "neighborhood"), ("density", "nearest_k")):
        with pytest.raises(ConfigError) as e:
            get_metric(mid).compute(_ctx(gen, ref), {})
        msg = str(e.value)
        assert mid in msg and "10 generated / 3 reference" in msg and f"metrics.params.{mid}.{kname}=<at most 2>" in msg
    refs = [Record(id=f"r{i}", caption="c", reference=f"{i}.png") for i in range(5)]
    assert get_metric("recall").requires(refs, None, {}) is None
    why = get_metric("coverage").requires(refs, None, {})
    assert "5 reference images, fewer than k + 1 = 6" in why and "metrics.params.coverage.nearest_k<=4" in why
    assert "reference_stats cannot" in get_metric("density").requires([Record(id="a", caption="c")], None, {})


def test_feature_parameter_selects_what_both_sides_read() -> None:
    spec = get_metric("coverage")
    assert spec.needs_for({}) == (Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref"))
    assert spec.needs_for({"feature": "clip.image"}) == (Need("clip", "image", "gen"), Need("clip", "image", "ref"))
    for bad in ("clip.text", "nope.pool3", "detector.detections", "pool3"):
        with pytest.raises(ConfigError, match=r"metrics.params.coverage.feature=.*valid: .*clip.image"):
            spec.needs_for({"feature": bad})
    gen, ref = _feats(20, 8, 6), _feats(15, 8, 7)
    ctx = _ctx(gen, ref, key="clip.image")
    v = spec.compute(ctx, {"feature": "clip.image", "nearest_k": 2})
    assert v.value == m.coverage(gen, ref, 2)[0] and v.extras["feature"] == "clip.image" and v.extras["nearest_k"] == 2


def _ctx(gen: np.ndarray, ref: np.ndarray, key: str = "inception.pool3", per_prompt: int = 1) -> MetricContext:
    n = len(gen) // per_prompt
    recs = [Record(id=f"r{i}", caption=f"c{i}", reference=f"ref{i}.png") for i in range(n)]
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i // per_prompt, i % per_prompt, f"g{i}.png", f"s{i}") for i in range(len(gen))],
        gen_features={key: gen},
        ref_features={key: ref},
        ref_records=list(range(len(ref))),
    )


@pytest.mark.parametrize("keep", [32, 2])  # 2: the rows whose answer lies past the kept neighbours are recomputed
def test_replicates_are_the_metric_on_the_resampled_images(monkeypatch, keep) -> None:
    monkeypatch.setattr(m, "_KEEP", keep)
    gen, ref = _feats(60, 12, 8, shift=0.2), _feats(45, 12, 9)
    ctx = _ctx(gen, ref, per_prompt=2)  # 30 prompts, 2 images each: a drawn prompt brings both
    values = {mid: get_metric(mid).compute(ctx, {}) for mid in IDS}
    rng = np.random.default_rng(0)
    draws = np.vstack([np.arange(30), rng.integers(0, 30, size=(5, 30)), np.repeat(rng.integers(0, 30, (1, 3)), 10)])
    fns = {"precision": m.precision, "recall": m.recall, "density": m.density, "coverage": m.coverage}
    for mid, v in values.items():
        reps = v.resample(draws)
        assert reps[0] == pytest.approx(v.value, rel=1e-12)  # the identity resample is the point value
        for b, d in enumerate(draws):
            rows = np.concatenate([[2 * p, 2 * p + 1] for p in d])
            assert reps[b] == pytest.approx(fns[mid](gen[rows], ref)[0], rel=1e-12, abs=1e-15), (mid, b)
        assert len(set(np.round(reps[1:6], 12))) > 1  # replicates vary
    assert values["precision"].resample.kind == "mean" and values["recall"].resample.kind == "is"
    assert math.isnan(values["recall"].resample.score(np.array([0, 1, 2])))  # fewer than k + 1 images


def test_kid_replicates_are_kid_on_the_resampled_images() -> None:
    gen, ref = _feats(24, 8, 10), _feats(20, 8, 11, shift=0.2)
    p = {"subsets": 5, "subset_size": 10, "seed": 1}
    v = get_metric("kid").compute(_ctx(gen, ref), p)
    draws = np.vstack([np.arange(24), np.random.default_rng(1).integers(0, 24, (3, 24))])
    reps = v.resample(draws)
    # the identity resample reproduces the value (KidReplicator sums Gram-matrix entries: round-off only)
    assert reps[0] == pytest.approx(v.value, rel=1e-12) and v.resample.kind == "is"
    for b in range(1, 4):
        assert reps[b] == pytest.approx(kid(gen[np.sort(draws[b])], ref, **p)[0], rel=1e-12)
    assert math.isnan(v.resample.score(np.arange(9)))  # fewer images than subset_size


def test_through_the_pipeline_with_bootstrap(tmp_path, fresh_cache) -> None:
    from helpers import RANDOM_BACKBONES, structured_images

    from tise_bench.backbones import build_backbones
    from tise_bench.features.bank import FeatureBank

    gen = structured_images(tmp_path / "gen", 8, seed=41, size=32)
    ref = structured_images(tmp_path / "ref", 8, seed=42, size=32)
    res = tise_bench.evaluate(
        tmp_path / "gen",
        [f"shapes {i}" for i in range(8)],
        ids=[p.stem for p in gen],
        references=[str(p) for p in ref],
        metrics=list(IDS),
        params={"precision": {"neighborhood": 2}, "coverage": {"feature": "clip.image"}},
        backbones=RANDOM_BACKBONES,
        cache_dir=fresh_cache,
        bootstrap={"replicates": 20, "replicates_features": 10, "seed": 0},
    )
    bank = FeatureBank(build_backbones(RANDOM_BACKBONES, {"inception", "clip"}, fresh_cache), fresh_cache)
    f = bank.images([str(p) for p in gen + ref], {"inception": {"pool3"}, "clip": {"image"}}).features
    pool3, clip = f["inception.pool3"], f["clip.image"]
    assert res.metrics["precision"].value == m.precision(pool3[:8], pool3[8:], 2)[0]
    assert res.metrics["recall"].value == m.recall(pool3[:8], pool3[8:])[0]
    assert res.metrics["density"].value == m.density(pool3[:8], pool3[8:])[0]
    assert res.metrics["coverage"].value == m.coverage(clip[:8], clip[8:])[0]
    assert res.metrics["coverage"].extras["feature"] == "clip.image" and res.meta["recall"]["direction"] == "higher"
    assert {mid: len(res.replicates[mid]) for mid in IDS} == {
        "precision": 20,
        "recall": 10,
        "density": 20,
        "coverage": 10,
    }
