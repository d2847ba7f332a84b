"""IS / FID-family bootstrap replicates kept in the cache (issue 14 item 1): an unchanged re-run reads them instead
of recomputing hundreds of IS / FID values; anything its replicates depend on changes the fingerprint."""

from __future__ import annotations

import numpy as np

from tise_bench.bootstrap import BootstrapSpec, ReplicateMemo, replicate_fingerprints, replicate_metrics
from tise_bench.context import Sample
from tise_bench.data.manifest import Record
from tise_bench.resampling import MeanResampler, RowsResampler
from tise_bench.types import MetricValue

N = 12
RECS = [Record(f"{i:03d}", f"caption {i}") for i in range(N)]
SAMPLES = [Sample(i, 0, f"{i}.png", f"sha{i}") for i in range(N)]
X = np.random.default_rng(0).normal(size=(N, 3))
SPEC = BootstrapSpec(replicates=50, replicates_features=20, seed=0)


def _metrics(calls: list[int], x: np.ndarray = X) -> dict[str, MetricValue]:
    def score(rows: np.ndarray) -> float:
        calls.append(len(rows))
        return float(np.var(x[rows]))

    feat = RowsResampler(score, np.arange(N), N, "fid")
    mean = MeanResampler(x[:, 0], np.arange(N), N)
    return {
        "fid": MetricValue(value=float(np.var(x)), n=N, resample=feat),
        "clip_score": MetricValue(value=float(np.mean(x[:, 0])), n=N, resample=mean),
    }


def _run(cache, calls, x=X, meta=None, samples=SAMPLES):
    metrics = _metrics(calls, x)
    subsets = {m: "realism" for m in metrics}
    fps = replicate_fingerprints(metrics, subsets, {"realism": samples}, meta or {})
    return replicate_metrics(metrics, subsets, {"realism": RECS}, SPEC, memo=ReplicateMemo(cache, fps))


def test_unchanged_rerun_reads_the_replicates(tmp_path):
    calls: list[int] = []
    first, meta1 = _run(tmp_path, calls)
    assert len(calls) == 1 + 20  # the identity recomputation, then 20 replicates
    calls.clear()
    again, meta2 = _run(tmp_path, calls)
    assert calls == []  # nothing recomputed
    assert np.array_equal(again["fid"], first["fid"]) and np.array_equal(again["clip_score"], first["clip_score"])
    assert meta2["metrics"]["fid"]["cached"] is True and "cached" not in meta1["metrics"]["fid"]
    assert "cached" not in meta2["metrics"]["clip_score"]  # mean-type replicates are always drawn (milliseconds)
    assert meta2["metrics"]["fid"]["identity"] == meta1["metrics"]["fid"]["identity"]


def test_changed_inputs_recompute(tmp_path):
    calls: list[int] = []
    _run(tmp_path, calls)
    for kwargs in (
        {"x": X * 1.01},  # other features: another value
        {"samples": [Sample(i, 0, f"{i}.png", f"other{i}") for i in range(N)]},  # other images, same value
        {"meta": {"fid": {"comparability": {"backbone.inception": "another-namespace"}}}},  # another network
    ):
        calls.clear()
        _, meta = _run(tmp_path, calls, **kwargs)
        assert len(calls) == 21 and "cached" not in meta["metrics"]["fid"], kwargs


def test_unreadable_memo_file_is_recomputed_with_a_warning(tmp_path, caplog):
    calls: list[int] = []
    first, _ = _run(tmp_path, calls)
    (f,) = (tmp_path / "replicates").glob("*.npz")
    f.write_bytes(b"not a zip")
    calls.clear()
    again, meta = _run(tmp_path, calls)
    assert len(calls) == 21 and np.array_equal(again["fid"], first["fid"])
    assert "unreadable" in caplog.text
