"""Each metric's own resampling (MetricValue.resample) and the run's bootstrap draws (tise_bench.bootstrap).

Identity resample = every prompt once, in order: each metric's resampler must give back the metric's value
(the run refuses replicates otherwise). Multi-sample prompts, multi-crop images, groups (PA words, SOA
classes) and TISE's order-dependent O-IS split loop are covered on planted inputs.
"""

from __future__ import annotations


import numpy as np
import pytest

from tise_bench.bootstrap import BootstrapSpec, draw_key, draws, replicate_metrics
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics.inception import FidReplicator, fid_statistics, frechet_distance
from tise_bench.registry import get_metric
from tise_bench.resampling import MeanResampler, RowsResampler, csr_from_owner, expand, grouped_mean
from tise_bench.types import MetricValue

NAMES = {0: "person", 1: "dog", 2: "cat"}


def _identity(mv: MetricValue, n_prompts: int) -> float:
    return float(mv.resample(np.arange(n_prompts)[None, :])[0])


def _samples(recs: list[Record], k: int) -> list[Sample]:
    return [Sample(i, j, f"{i}_{j}.png", f"{i}{j}") for i in range(len(recs)) for j in range(k)]


def test_expand_keeps_multi_sample_prompts_and_grouped_mean() -> None:
    csr = csr_from_owner(np.array([0, 0, 1, 2, 2, 2]), 4)  # prompt 3 has no samples
    assert expand(np.array([2, 0, 3, 2]), csr).tolist() == [3, 4, 5, 0, 1, 3, 4, 5]
    w = np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 0.0, 0.0, 1.0]])
    out = grouped_mean(w, np.array([1.0, 0.0, 1.0, np.nan]), groups=np.array([0, 0, 1, 1]))
    assert out.tolist() == [pytest.approx(0.75), 1.0]  # unweighted mean over groups present


def test_mean_resampler_floor_and_replicate_by_hand() -> None:
    r = MeanResampler(values=np.array([-1.0, -3.0, 2.0]), prompt_of_row=np.array([0, 0, 1]), n_prompts=2, floor=0.0)
    assert r(np.array([[0, 1]]))[0] == 0.0  # mean −2/3 clamped (torchmetrics' CLIP score)
    assert r(np.array([[1, 1]]))[0] == 2.0 and r(np.array([[0, 0]]))[0] == 0.0


def test_soa_resamples_image_class_pairs_on_the_percent_scale() -> None:
    recs = [Record(f"r{i}", "x", labels=["dog", "cat"] if i % 3 == 0 else ["dog"]) for i in range(9)]
    rng = np.random.default_rng(0)
    dets = np.full((9, 4, 6), -1.0, dtype=np.float32)
    for i in range(9):
        if rng.random() < 0.6:
            dets[i, 0] = [0, 0, 5, 5, 0.9, 1]
        if rng.random() < 0.5:
            dets[i, 1] = [0, 0, 5, 5, 0.9, 2]
    ctx = MetricContext(
        subset="soa",
        records=recs,
        samples=_samples(recs, 1),
        gen_features={"detector.detections": dets},
        extra={"class_names": NAMES},
    )
    for mid in ("soa_c", "soa_i"):
        mv = get_metric(mid).compute(ctx, {})
        assert 0.0 < mv.value < 100.0 and _identity(mv, 9) == pytest.approx(mv.value, rel=1e-12)
        reps = mv.resample(draws("soa:k", 9, 200, 0))
        assert 5.0 < np.percentile(reps, 97.5) - np.percentile(reps, 2.5) < 80.0  # percent, not fraction


def test_pa_groups_by_word_and_clip_score_floor() -> None:
    words = ["left", "right", "above"]
    recs = [
        Record(f"r{i}", f"a {words[i % 3]} b", positional_word=words[i % 3], counter_caption=f"c {i}")
        for i in range(12)
    ]
    rng = np.random.default_rng(1)
    texts = {
        t: v / np.linalg.norm(v)
        for t, v in (
            (t, rng.normal(size=8))
            for r in recs
            for t in (r.caption, r.counter_caption, "A photo depicts " + r.caption)
        )
    }
    img = rng.normal(size=(24, 8)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    ctx = MetricContext(
        subset="pa", records=recs, samples=_samples(recs, 2), gen_features={"clip.image": img}, text_features=texts
    )
    for mid, params in (("pa", {}), ("clip_score", {"convention": "torchmetrics", "prefix": ""}), ("clip_score", {})):
        mv = get_metric(mid).compute(ctx, params)
        assert _identity(mv, 12) == pytest.approx(mv.value, rel=1e-12), (mid, params)


def test_o_is_replicates_visit_crops_in_the_feature_pass_order() -> None:
    """TISE's O-IS split loop depends on the crops' order: the crops were concatenated in the feature pass's row
    order (``sample_rank``), not in sample order — the identity resample must follow it."""
    recs = [Record(str(i), f"c{i}") for i in range(6)]
    rank = np.array([3, 0, 5, 1, 4, 2])  # feature-pass row of each sample
    rng = np.random.default_rng(2)
    owner = np.repeat(np.argsort(rank, kind="stable"), 4)  # crops grouped by sample, in feature-pass order
    logits = (rng.normal(size=(24, 7)) * 3).astype(np.float32)
    ctx = MetricContext(
        subset="realism",
        records=recs,
        samples=_samples(recs, 1),
        sample_rank=rank,
        gen_features={"crops.logits_unbiased": logits, "crops.owner": owner},
    )
    mv = get_metric("o_is").compute(ctx, {"splits": 5})
    assert _identity(mv, 6) == mv.value
    shuffled = MetricContext(**{**ctx.__dict__, "sample_rank": None})
    assert _identity(get_metric("o_is").compute(shuffled, {"splits": 5}), 6) != mv.value  # order matters


def test_fid_replicator_identity_and_low_rank_path() -> None:
    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(30, 64)), rng.normal(size=(100, 64)) + 0.2
    fr = FidReplicator(x, *fid_statistics(ref))
    assert fr.low_rank
    idx = rng.integers(0, 30, 30)
    assert fr.replicate(np.bincount(idx, minlength=30)) == pytest.approx(fr.exact(idx), rel=1e-7)
    big = FidReplicator(rng.normal(size=(12, 4)), *fid_statistics(ref[:, :4]))
    # more rows than dimensions: the reference's square root (frechet_distance_sqrt), torch-fidelity's value to
    # round-off; the identity replicate is the point value itself
    assert not big.low_rank and big(np.arange(12)) == big.point()
    assert big.point() == pytest.approx(big.exact(np.arange(12)), rel=1e-12)
    assert big(idx[:12] % 12) == pytest.approx(big.exact(idx[:12] % 12), rel=1e-12)
    r = RowsResampler(score=big, prompt_of_sample=np.arange(12) // 2, n_prompts=6, kind="fid")
    assert r(np.arange(6)[None, :])[0] == big.point()


def test_fid_point_low_rank_is_the_exact_value() -> None:
    """N <= D: the point FID is computed in the N-dim row space. Σ_g Σ_r has rank N - 1, so the exact trace term is
    the sum of sqrt of its N - 1 non-zero eigenvalues; the full D x D eigvals formula (torch-fidelity's) also sums
    sqrt(round-off) of the D - N + 1 null ones. The low-rank value equals the exact one to 1e-9 and the full formula
    to its noise (< 1e-6 here), and is ~100x faster at N = 256, D = 2048."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 384)).astype(np.float32)
    mu_r, s_r = fid_statistics((rng.normal(size=(6, 384)) + 0.3).astype(np.float32))
    mu_g, s_g = fid_statistics(x)
    top = np.sort(np.linalg.eigvals(s_g @ s_r).real)[-5:]  # the N - 1 = 5 non-zero eigenvalues
    exact = float((mu_g - mu_r) @ (mu_g - mu_r) + np.trace(s_g) + np.trace(s_r) - 2 * np.sqrt(top).sum())
    point = FidReplicator(x, mu_r, s_r).point()
    full = frechet_distance(mu_g, s_g, mu_r, s_r)
    assert point == pytest.approx(exact, rel=1e-9) and full == pytest.approx(exact, rel=1e-6)
    assert abs(point - exact) < abs(full - exact)
    with pytest.raises(ValueError, match="dimension mismatch"):  # the checks frechet_distance made are kept
        FidReplicator(x, mu_r[:10], s_r[:10, :10]).point()
    bad = x.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        FidReplicator(bad, mu_r, s_r).point()


def _mean_metric(values: np.ndarray, n_prompts: int, shift: float = 0.0) -> MetricValue:
    v = np.asarray(values, dtype=np.float64) + shift
    return MetricValue(float(v.mean()), len(v), resample=MeanResampler(v, np.arange(len(v)) % n_prompts, n_prompts))


def test_replicate_metrics_draws_seeded_prefix_stable_and_checked() -> None:
    recs = [Record(f"p{i}", "c") for i in range(40)]
    vals = np.random.default_rng(3).normal(size=40)
    good = _mean_metric(vals, 40)
    wrong = MetricValue(good.value + 1.0, 40, resample=good.resample)  # resampler disagrees with the value
    metrics = {"clip_score": good, "clip_i2i": wrong, "kid": MetricValue(1.0, 40)}
    subsets = dict.fromkeys(metrics, "realism")
    reps, meta = replicate_metrics(metrics, subsets, {"realism": recs}, BootstrapSpec(replicates=200, seed=0))
    assert set(reps) == {"clip_score"} and reps["clip_score"].shape == (200,)
    assert "identity" in meta["skipped"]["clip_i2i"] and meta["skipped"]["kid"] == "the metric defines no resampling"
    again, _ = replicate_metrics({"clip_score": good}, subsets, {"realism": recs}, BootstrapSpec(replicates=50))
    np.testing.assert_array_equal(draws("realism:x", 40, 50, 0), draws("realism:x", 40, 200, 0)[:50])
    np.testing.assert_allclose(again["clip_score"], reps["clip_score"][:50], rtol=1e-12)  # replicate b = same draw
    other, _ = replicate_metrics({"clip_score": good}, subsets, {"realism": recs}, BootstrapSpec(replicates=50, seed=1))
    assert not np.array_equal(other["clip_score"], again["clip_score"])
    key = meta["metrics"]["clip_score"]["draw_key"]
    assert key == draw_key("realism", recs) and key != draw_key("realism", recs[::-1])
    none, meta0 = replicate_metrics({"clip_score": good}, subsets, {"realism": recs}, BootstrapSpec(replicates=0))
    assert none == {} and meta0["skipped"] == {"clip_score": "bootstrap.replicates=0"} and meta0["file"] is None


def test_interval_shrinks_with_more_prompts() -> None:
    widths = []
    for n in (20, 200):
        recs = [Record(f"p{i}", "c") for i in range(n)]
        mv = _mean_metric(np.random.default_rng(n).normal(size=2 * n), n)
        reps, _ = replicate_metrics(
            {"clip_score": mv}, {"clip_score": "realism"}, {"realism": recs}, BootstrapSpec(replicates=300)
        )
        widths.append(np.percentile(reps["clip_score"], 97.5) - np.percentile(reps["clip_score"], 2.5))
    assert widths[1] < 0.6 * widths[0]


@pytest.mark.parametrize("bad", [{"replicates": -1}, {"reps": 3}])
def test_bootstrap_config_is_checked(bad) -> None:
    with pytest.raises(ConfigError, match="bootstrap"):
        BootstrapSpec.from_config(bad)
