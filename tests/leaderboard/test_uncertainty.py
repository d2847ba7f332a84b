"""Prompt bootstrap (tise_bench.leaderboard.uncertainty) on tiny synthetic runs with a hand-built feature cache."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tise_bench.errors import DataError
from tise_bench.features.store import FeatureStore
from tise_bench.leaderboard.bootdata import load_run
from tise_bench.leaderboard.resample import FidReplicator, csr_from_owner, expand, grouped_mean
from tise_bench.leaderboard.uncertainty import add_uncertainty, replicate_values
from tise_bench.metrics.inception import fid_statistics, frechet_distance

BB = {"ident": "incep-test", "weights_hash": "0" * 64, "preproc_version": "v1"}
NS = "incep-test-0000000000000000-v1"
D = 4


def _make_run(root: Path, cache: Path, model: str, n_prompts: int, shift: float, seed: int = 0,
              k: int = 2) -> Path:
    """A run with ``k`` samples per prompt: clip_score = per-sample noise + shift; FID on D-dim features."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    man = data / f"realism-{n_prompts}.jsonl"
    store = FeatureStore(cache, NS)
    if not man.exists():  # shared eval set: same prompts and references for every model
        ref_rng = np.random.default_rng(1234 + n_prompts)
        recs, keys = [], []
        for i in range(n_prompts):
            ref = data / f"ref{n_prompts}_{i}.bin"
            ref.write_bytes(f"reference {n_prompts} {i}".encode())
            keys.append(hashlib.sha256(ref.read_bytes()).hexdigest())
            recs.append({"id": f"p{i:04d}", "caption": f"prompt {i}", "reference": str(ref)})
        man.write_text("".join(json.dumps(r) + "\n" for r in recs))
        store.put(keys, {"pool3": ref_rng.normal(size=(n_prompts, D)).astype(np.float32)})
    rows, keys = [], []
    for i in range(n_prompts):
        for j in range(k):
            sha = hashlib.sha256(f"{model}-{n_prompts}-{i}-{j}".encode()).hexdigest()
            rows.append({"subset": "realism", "id": f"p{i:04d}", "k": j, "file": f"{model}/{i}_{j}.png", "sha256": sha,
                         "caption": f"prompt {i}", "clip_score": float(rng.normal(shift, 1.0))})
            keys.append(sha)
    feats = (rng.normal(size=(len(keys), D)) + shift).astype(np.float32)
    store.put(keys, {"pool3": feats})
    refs = FeatureStore(cache, NS).get([hashlib.sha256((data / f"ref{n_prompts}_{i}.bin").read_bytes()).hexdigest()
                                        for i in range(n_prompts)], ("pool3",))["pool3"]
    fid = frechet_distance(*fid_statistics(feats), *fid_statistics(refs))
    table = pd.DataFrame(rows)
    out = root / model
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "samples.parquet", index=False)
    mj = {"model": model, "backbones": {"inception": BB}, "eval_set": {"manifests": {"realism": str(man)}},
          "metrics": {"clip_score": {"value": float(table["clip_score"].mean()), "subset": "realism"},
                      "fid": {"value": fid, "subset": "realism"}}, "config": {}}
    (out / "metrics.json").write_text(json.dumps(mj))
    return out


def _lb(runs: dict[str, Path], external: dict[str, float] | None = None) -> dict:
    rows = []
    for m, d in runs.items():
        mj = json.loads((d / "metrics.json").read_text())
        rows.append({"model": m, "external": False, "values": {k: v["value"] for k, v in mj["metrics"].items()}})
    for m, v in (external or {}).items():
        rows.append({"model": m, "external": True, "values": {"clip_score": v, "fid": 1e6}})
    return {"metrics": [{"id": "clip_score", "display": "CLIP-S", "higher_is_better": True},
                        {"id": "fid", "display": "FID", "higher_is_better": False}],
            "aspects": {"relevance": ["clip_score"], "realism": ["fid"]}, "rows": rows, "excluded": {}}


def _width(ci: list[float]) -> float:
    return ci[1] - ci[0]


def test_ci_shrinks_with_more_prompts(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    small = _make_run(tmp_path / "s", cache, "m", 20, 0.0)
    big = _make_run(tmp_path / "b", cache, "m", 200, 0.0)
    lbs, lbb = _lb({"m": small}), _lb({"m": big})
    add_uncertainty(lbs, {"m": small}, cache, n_boot=200)
    add_uncertainty(lbb, {"m": big}, cache, n_boot=200)
    for mid in ("clip_score", "fid"):
        assert _width(lbb["rows"][0]["ci"][mid]) < 0.6 * _width(lbs["rows"][0]["ci"][mid])
    assert lbb["bootstrap"]["skipped"] == {} and lbb["bootstrap"]["method"] == "percentile, resampling prompts"


def test_same_seed_identical_other_seed_differs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run = _make_run(tmp_path, cache, "m", 30, 0.0)
    out = []
    for seed in (0, 0, 1):
        lb = _lb({"m": run})
        add_uncertainty(lb, {"m": run}, cache, n_boot=50, seed=seed)
        out.append(lb["rows"][0]["ci"])
    assert out[0] == out[1]
    assert out[0]["clip_score"] != out[2]["clip_score"] and out[0]["fid"] != out[2]["fid"]


def test_identity_resample_reproduces_point_fid(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_dir = _make_run(tmp_path, cache, "m", 25, 0.3)
    run = load_run("m", run_dir, cache)
    sub = run.subsets["realism"]
    ident = replicate_values(run.recipes["fid"], sub, np.arange(len(sub.records))[None, :])[0]
    assert ident == json.loads((run_dir / "metrics.json").read_text())["metrics"]["fid"]["value"]  # exact path
    # low-rank path (rows <= dim): equal to the metric's formula up to the round-off that formula takes from
    # √(noise) of the D − n null-space eigenvalues (~1e-8 relative here)
    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(30, 64)), rng.normal(size=(100, 64)) + 0.2
    fr = FidReplicator(x, *fid_statistics(ref))
    assert fr.low_rank
    idx = rng.integers(0, 30, 30)
    assert fr.replicate(np.bincount(idx, minlength=30)) == pytest.approx(fr.exact(idx), rel=1e-7)


def test_paired_p_values_and_rank_summaries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs = {"good": _make_run(tmp_path, cache, "good", 40, 3.0, seed=1),
            "twin": _make_run(tmp_path, cache, "twin", 40, 3.0, seed=1),
            "bad": _make_run(tmp_path, cache, "bad", 40, -3.0, seed=2)}
    lb = _lb(runs, external={"paper": -10.0})
    add_uncertainty(lb, runs, cache, n_boot=100)
    p = {(e["a"], e["b"], e["metric"]): e for e in lb["paired"]}
    assert p[("good", "twin", "clip_score")]["p"] == 1.0 and p[("good", "twin", "fid")]["p"] == 1.0
    assert p[("good", "bad", "clip_score")]["p"] == pytest.approx(0.01)
    assert p[("good", "bad", "clip_score")]["ci"][0] > 0
    assert "ci" not in lb["rows"][-1]  # external row: no per-sample data, no CI
    for probs in lb["rank_probabilities"].values():
        assert len(probs) == 4 and sum(probs) == pytest.approx(1.0)
    assert lb["rank_probabilities"]["paper"][0] == 1.0  # fixed external values, always last here
    assert all(t == pytest.approx(1.0) for t in lb["kendall_tau"])  # good≡twin tie is stable, others far apart


def test_missing_features_name_model_and_fix(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run = _make_run(tmp_path, cache, "m", 10, 0.0)
    with pytest.raises(DataError, match=r"'m'/fid.*re-run the evaluation"):
        load_run("m", run, tmp_path / "other-cache")


def test_expand_keeps_multi_sample_prompts_and_grouped_mean() -> None:
    csr = csr_from_owner(np.array([0, 0, 1, 2, 2, 2]), 4)  # prompt 3 has no samples
    assert expand(np.array([2, 0, 3, 2]), csr).tolist() == [3, 4, 5, 0, 1, 3, 4, 5]
    w = np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 0.0, 0.0, 1.0]])
    out = grouped_mean(w, np.array([1.0, 0.0, 1.0, np.nan]), groups=np.array([0, 0, 1, 1]))
    assert out.tolist() == [pytest.approx(0.75), 1.0]  # unweighted mean over groups present
