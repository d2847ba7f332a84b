"""The reference side of FID cached (issue 14 item 1): ``Σ_r^½`` computed once per reference and read back from
``<cache>/stats/sqrt-<key>.npz``; a model's FID with more rows than dimensions is then one symmetric eigenvalue solve
(``frechet_distance_sqrt``), equal to torch-fidelity's ``fid_statistics_to_metric`` on the same statistics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.features import refcache
from tise_bench.metrics import fd
from tise_bench.metrics.inception import FidReplicator, fid_statistics, frechet_distance_sqrt
from tise_bench.registry import get_metric

D = 64


@pytest.fixture(autouse=True)
def _no_memo():
    refcache.clear_memo()
    yield
    refcache.clear_memo()


def _torch_fidelity(gen: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> float:
    mu_g, sigma_g = fid_statistics(gen)
    return fid_statistics_to_metric({"mu": mu_g, "sigma": sigma_g}, {"mu": mu_r, "sigma": sigma_r}, verbose=False)[
        KEY_METRIC_FID
    ]


def _reference(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "full":
        return rng.normal(size=(400, D)) @ rng.normal(size=(D, D)) * 0.2 + 0.3
    if kind == "rank_deficient":  # fewer reference rows than dimensions: Σ_r singular (rank 39)
        return rng.normal(size=(40, D)) + 0.2
    # nearly singular: rank 8 plus 1e-6 noise (eigenvalues from ~1e1 down to ~1e-12)
    return rng.normal(size=(400, 8)) @ rng.normal(size=(8, D)) + 1e-6 * rng.normal(size=(400, D))


@pytest.mark.parametrize("kind", ["full", "rank_deficient", "nearly_singular"])
# N > D: the cached square root, A Σ_g A formed as A (Zᵀ Z) A (300 rows, replicates ~190 distinct > 2D) or as
# (Z A)ᵀ (Z A) (100 rows < 2D); N <= D: the row-space (Gram) path
@pytest.mark.parametrize("n", [300, 100, 40])
def test_fid_equals_torch_fidelity(kind: str, n: int) -> None:
    rng = np.random.default_rng(7)
    gen = (rng.normal(size=(n, D)) @ rng.normal(size=(D, D)) * 0.2).astype(np.float32)
    mu_r, sigma_r = fid_statistics(_reference(kind, rng))
    fr = FidReplicator(gen, mu_r, sigma_r)
    assert fr.low_rank == (n <= D)
    assert fr.point() == pytest.approx(_torch_fidelity(gen, mu_r, sigma_r), rel=1e-6)
    rows = rng.integers(0, n, n)  # a bootstrap replicate: duplicated rows
    assert fr(rows) == pytest.approx(_torch_fidelity(gen[rows], mu_r, sigma_r), rel=1e-6)
    assert fr(np.arange(n)) == fr.point()  # the identity replicate is the point value


def test_frechet_distance_sqrt_is_torch_fidelity_and_psd_sqrt_clips_round_off() -> None:
    rng = np.random.default_rng(3)
    mu_g, sigma_g = fid_statistics(rng.normal(size=(200, D)))
    mu_r, sigma_r = fid_statistics(_reference("nearly_singular", rng))
    a = refcache.psd_sqrt(sigma_r)
    assert np.array_equal(a, a.T) and np.allclose(a @ a, sigma_r, atol=1e-9)
    ref = fid_statistics_to_metric({"mu": mu_g, "sigma": sigma_g}, {"mu": mu_r, "sigma": sigma_r}, verbose=False)
    assert frechet_distance_sqrt(mu_g, sigma_g, mu_r, sigma_r, a) == pytest.approx(ref[KEY_METRIC_FID], rel=1e-6)
    # a PSD matrix whose eigh gives a negative round-off eigenvalue: clipped to 0, no NaN
    v = np.linalg.qr(rng.normal(size=(D, D)))[0]
    neg = (v * np.r_[np.ones(D - 1), -1e-14]) @ v.T
    assert np.isfinite(refcache.psd_sqrt(neg)).all()
    # 1-D by hand: FD of N(0, 4) and N(1, 9) is 1 + (2 - 3)^2 = 2
    got = frechet_distance_sqrt(np.zeros(1), np.array([[4.0]]), np.ones(1), np.array([[9.0]]), np.array([[3.0]]))
    assert got == pytest.approx(2.0, rel=1e-15)


def test_square_root_cached_on_disk_and_corrupt_file_recomputed(tmp_path, monkeypatch, caplog) -> None:
    rng = np.random.default_rng(5)
    _, sigma = fid_statistics(_reference("full", rng))
    calls: list[int] = []
    compute = refcache.psd_sqrt

    def counted(s: np.ndarray) -> np.ndarray:
        calls.append(1)
        return compute(s)

    monkeypatch.setattr(refcache, "psd_sqrt", counted)
    a = refcache.reference_sqrt(sigma, tmp_path)
    path = refcache.sqrt_path(tmp_path, refcache.sigma_key(sigma))
    assert path.parent == tmp_path / "stats" and path.is_file() and len(calls) == 1
    assert refcache.reference_sqrt(sigma, tmp_path) is a and len(calls) == 1  # this process: from memory
    refcache.clear_memo()  # a later run: read from disk, not recomputed
    again = refcache.reference_sqrt(sigma, tmp_path)
    assert np.array_equal(again, a) and len(calls) == 1 and not again.flags.writeable
    other = sigma.copy()
    other[0, 0] += 1e-9  # another reference: another key, computed
    assert refcache.sigma_key(other) != refcache.sigma_key(sigma)
    refcache.reference_sqrt(other, tmp_path)
    assert len(calls) == 2

    good = path.read_bytes()
    for damage in (good[: len(good) // 2], good[:-200] + bytes(200)):  # truncated; altered bytes
        refcache.clear_memo()
        path.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="tise_bench.features.refcache"):
            caplog.clear()
            got = refcache.reference_sqrt(sigma, tmp_path)
        assert "corrupt" in caplog.text and str(path) in caplog.text
        assert np.array_equal(got, a) and path.read_bytes() == good  # recomputed and rewritten
    assert len(calls) == 4
    # a valid file written for another covariance under this key is refused too
    refcache.clear_memo()
    path.write_bytes(refcache.sqrt_path(tmp_path, refcache.sigma_key(other)).read_bytes())
    with caplog.at_level(logging.WARNING, logger="tise_bench.features.refcache"):
        caplog.clear()
        assert np.array_equal(refcache.reference_sqrt(sigma, tmp_path), a)
    assert "another covariance" in caplog.text and len(calls) == 5


def _ctx(gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], cache) -> MetricContext:
    n = len(next(iter(gen.values())))
    recs = [Record(id=f"r{i}", caption=f"c{i}", reference=f"ref{i}.png") for i in range(n)]
    stats = fid_statistics(ref["inception.pool3"]) if "inception.pool3" in ref else None
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"g{i}.png", f"h{i}") for i in range(n)],
        gen_features=gen,
        ref_features=ref,
        ref_records=list(range(n)),
        ref_stats_fn=None if stats is None else (lambda key: stats),
        extra={"cache_dir": cache},
    )


def test_metrics_read_the_run_cache(tmp_path, monkeypatch) -> None:
    """FID and FD-DINOv2 with N > D compute the square root once per reference (written under the run's cache) and
    read it on the next run; N <= D never needs it."""
    rng = np.random.default_rng(9)
    gen = (rng.normal(size=(150, D)) @ rng.normal(size=(D, D)) * 0.2).astype(np.float32)
    ref = _reference("full", rng).astype(np.float32)
    calls: list[int] = []
    compute = refcache.psd_sqrt
    monkeypatch.setattr(refcache, "psd_sqrt", lambda s: calls.append(1) or compute(s))
    for key, mid in (("inception.pool3", "fid"), (fd.DINOV2, "fd_dinov2")):
        ctx = _ctx({key: gen}, {key: ref}, tmp_path)
        first = get_metric(mid).compute(ctx, {})
        assert first.value == pytest.approx(_torch_fidelity(gen, *fid_statistics(ref)), rel=1e-6)
        refcache.clear_memo()
        second = get_metric(mid).compute(ctx, {})
        assert second.value == first.value
        assert second.resample.score(np.arange(150)) == first.value  # the bootstrap's identity replicate
    assert len(calls) == 1  # one reference (FD's statistics are FID's, bit for bit): one square root, ever
    assert len(list((tmp_path / "stats").glob("sqrt-*.npz"))) == 1
    small = _ctx({"inception.pool3": gen[:D]}, {"inception.pool3": ref}, tmp_path / "other")
    get_metric("fid").compute(small, {})
    assert len(calls) == 1 and not (tmp_path / "other").exists()
