"""The leaderboard's uncertainty pass reads the replicates runs wrote (metrics.json ``bootstrap`` + bootstrap.npz):
CIs, paired tests (only between runs that drew the same replicates), rank probabilities and Kendall tau — on
hand-written run folders (the writer side is tested in tests/test_run_bootstrap.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tise_bench.errors import DataError
from tise_bench.leaderboard.uncertainty import NO_REPLICATES, add_uncertainty, load_replicates


def _run(
    root: Path,
    model: str,
    values: dict[str, float],
    reps: dict[str, np.ndarray],
    seed: int = 0,
    key: str = "realism:abc",
) -> Path:
    out = root / model
    out.mkdir(parents=True)
    np.savez(out / "bootstrap.npz", **reps)
    boot = {
        "replicates": 1000,
        "replicates_features": 200,
        "seed": seed,
        "file": "bootstrap.npz",
        "skipped": {},
        "metrics": {
            m: {"subset": "realism", "draw_key": key, "kind": "mean", "replicates": len(r)} for m, r in reps.items()
        },
    }
    mj = {
        "model": model,
        "metrics": {m: {"value": v, "subset": "realism"} for m, v in values.items()},
        "bootstrap": boot,
    }
    (out / "metrics.json").write_text(json.dumps(mj))
    return out


def _lb(runs: dict[str, dict[str, float]], external: dict[str, float] | None = None) -> dict:
    rows = [{"model": m, "external": False, "values": dict(v)} for m, v in runs.items()]
    rows += [
        {"model": m, "external": True, "values": {"clip_score": v, "fid": 1e6}} for m, v in (external or {}).items()
    ]
    return {
        "metrics": [
            {"id": "clip_score", "display": "CLIP-S", "higher_is_better": True},
            {"id": "fid", "display": "FID", "higher_is_better": False},
        ],
        "aspects": {"relevance": ["clip_score"], "realism": ["fid"]},
        "rows": rows,
        "excluded": {},
    }


def _reps(rng: np.random.Generator, center: float, n: int, scale: float = 0.1) -> np.ndarray:
    return center + scale * rng.normal(size=n)


def test_ci_paired_p_values_and_rank_summaries(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shared = {"clip_score": _reps(rng, 3.0, 100), "fid": _reps(rng, 10.0, 40)}
    vals = {
        "good": {"clip_score": 3.0, "fid": 10.0},
        "twin": {"clip_score": 3.0, "fid": 10.0},
        "bad": {"clip_score": -3.0, "fid": 50.0},
    }
    dirs = {
        "good": _run(tmp_path, "good", vals["good"], shared),
        "twin": _run(tmp_path, "twin", vals["twin"], shared),
        "bad": _run(tmp_path, "bad", vals["bad"], {"clip_score": _reps(rng, -3.0, 100), "fid": _reps(rng, 50.0, 40)}),
    }
    lb = _lb(vals, external={"paper": -10.0})
    add_uncertainty(lb, dirs, n_boot=60)
    b = lb["bootstrap"]
    assert b["replicates"] == {"clip_score": 60, "fid": 40} and b["n_rank"] == 40 and b["seed"] == 0
    assert b["skipped"] == {} and b["unpaired_metrics"] == []
    good = next(r for r in lb["rows"] if r["model"] == "good")
    assert good["ci"]["clip_score"] == pytest.approx(list(np.quantile(shared["clip_score"][:60], [0.025, 0.975])))
    p = {(e["a"], e["b"], e["metric"]): e for e in lb["paired"]}
    assert p[("good", "twin", "clip_score")]["p"] == 1.0 and p[("good", "twin", "fid")]["p"] == 1.0
    assert p[("good", "bad", "clip_score")]["p"] == pytest.approx(1 / 60) and p[("good", "bad", "fid")]["p"] == 1 / 40
    assert p[("good", "bad", "clip_score")]["ci"][0] > 0
    assert "ci" not in lb["rows"][-1]  # external row: no per-sample data, no CI
    for probs in lb["rank_probabilities"].values():
        assert len(probs) == 4 and sum(probs) == pytest.approx(1.0)
    assert lb["rank_probabilities"]["paper"][0] == 1.0  # fixed external values, always last here
    assert len(lb["kendall_tau"]) == 40 and all(t == pytest.approx(1.0) for t in lb["kendall_tau"])


def test_other_seed_or_prompts_are_not_paired(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dirs = {
        "a": _run(tmp_path, "a", {"clip_score": 1.0}, {"clip_score": _reps(rng, 1.0, 50)}),
        "b": _run(tmp_path, "b", {"clip_score": 2.0}, {"clip_score": _reps(rng, 2.0, 50)}, seed=3),
        "c": _run(tmp_path, "c", {"clip_score": 2.0}, {"clip_score": _reps(rng, 2.0, 50)}, key="realism:other"),
    }
    lb = _lb({m: {"clip_score": v} for m, v in (("a", 1.0), ("b", 2.0), ("c", 2.0))})
    add_uncertainty(lb, dirs, n_boot=50)
    assert lb["paired"] == [] and lb["bootstrap"]["unpaired_metrics"] == ["clip_score"]
    assert lb["bootstrap"]["seed"] == [0, 3]
    assert all(len(r["ci"]["clip_score"]) == 2 for r in lb["rows"])  # each still has its own interval


def test_runs_without_replicates_are_listed_with_the_fix(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"model": "old", "metrics": {"clip_score": {"value": 1.0}}}))
    assert load_replicates("old", old).skipped == {"clip_score": NO_REPLICATES}
    lb = _lb({"old": {"clip_score": 1.0}})
    add_uncertainty(lb, {"old": old}, n_boot=10)
    assert lb["bootstrap"]["skipped"] == {"old": {"clip_score": NO_REPLICATES}} and "re-run" in NO_REPLICATES
    run = _run(tmp_path, "m", {"clip_score": 1.0}, {"clip_score": np.ones(5)})
    (run / "bootstrap.npz").unlink()
    with pytest.raises(DataError, match=r"bootstrap.npz, which is missing.*re-run the evaluation of 'm'"):
        load_replicates("m", run)
