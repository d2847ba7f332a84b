"""A run writes everything the leaderboard reads: each metric's bootstrap replicates and the detector's boxes.

End to end on the demo (random backbones, 6 prompts): every metric with a value recomputes itself on the
identity resample and gets replicates; the leaderboard's intervals, paired tests and drill-down then read the
run folders only — with the feature cache deleted, and with a detector namespace that carries a suffix (the
``-amp16`` of fp16 CUDA features), which the old cache-reading code rebuilt by string and missed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import tiny_demo_config
from tise_bench.backbones.base import ImageBackbone
from tise_bench.leaderboard.build import LeaderboardOptions, build
from tise_bench.runner import run


def _cfg(cache, results):
    return tiny_demo_config(
        cache,
        results,
        "metrics.params.o_is.splits=2",
        "bootstrap.replicates=300",
        "bootstrap.replicates_features=40",
        "backbones.detector.imgsz=64",  # the weights file the CLI tests' demo runs leave in the session cache
        "backbones.detector.max_crops=2",  # O-IS still gets crops of every image (8 by default: 3x the forwards)
        "model.suite=[faithful,noisy]",
        "metrics.ids=[clip_score,clip_rp,is,is_star,fid,soa_c,soa_i,o_is,ca,pa]",
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("boot")
    cache, results = root / "cache", root / "results"
    for sub in ("weights", "weights-hashes"):  # the session's random weights files (no 40 s Inception init)
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, cache / sub)
    namespace = ImageBackbone.namespace
    # every backbone's cache namespace gets a suffix the leaderboard cannot guess (as -amp16 on CUDA)
    ImageBackbone.namespace = property(lambda self: namespace.fget(self) + "-amp16")  # type: ignore[method-assign]
    try:
        res = run(_cfg(cache, results))
    finally:
        ImageBackbone.namespace = namespace  # type: ignore[method-assign]
    shutil.rmtree(cache)  # the leaderboard must not need it
    return results / "demo", res


def test_every_metric_with_a_value_has_replicates(runs):
    data_dir, results = runs
    for res in results:
        folder = data_dir / res.model
        mj = json.loads((folder / "metrics.json").read_text())
        boot = mj["bootstrap"]
        valued = {m for m, e in mj["metrics"].items() if e["value"] is not None}
        assert set(boot["metrics"]) | set(boot["skipped"]) == set(mj["metrics"])
        wrong = {m: why for m, why in boot["skipped"].items() if m in valued}
        assert not wrong, wrong  # identity resample reproduced every value
        with np.load(folder / "bootstrap.npz", allow_pickle=False) as z:
            for m, e in boot["metrics"].items():
                assert z[m].shape == (300 if e["kind"] == "mean" else 40,)
                assert e["identity"] == pytest.approx(mj["metrics"][m]["value"], rel=1e-3)
        assert mj["detections"]["namespace"].endswith("-amp16")


def test_same_prompts_same_seed_pair_and_prefix_draws(runs, tmp_path):
    data_dir, _ = runs
    lb, _ = build(
        LeaderboardOptions(
            data="demo",
            results_dir=data_dir.parent,
            bootstrap=100,
            metrics=["clip_score", "fid"],
            aspects={"relevance": ["clip_score"], "realism": ["fid"]},
            formats=["json"],
        )
    )
    b = lb["bootstrap"]
    assert b["skipped"] == {} and b["unpaired_metrics"] == [] and b["seed"] == 0
    assert b["replicates"] == {"clip_score": 100, "fid": 40} and b["n_rank"] == 40
    models = [r["model"] for r in lb["rows"]]
    assert len([p for p in lb["paired"] if p["metric"] == "fid"]) == len(models) * (len(models) - 1) // 2
    for r in lb["rows"]:
        lo, hi = r["ci"]["clip_score"]
        assert lo <= r["values"]["clip_score"] <= hi


def test_drilldown_reads_the_runs_detections(runs):
    data_dir, _ = runs
    lb, _ = build(
        LeaderboardOptions(
            data="demo",
            results_dir=data_dir.parent,
            drilldown="faithful",
            drilldown_n=6,
            metrics=["clip_score"],
            aspects={"relevance": ["clip_score"]},
            formats=["json"],
        )
    )
    dd = lb["drilldown"]
    assert "note" not in dd and len(dd["samples"]) == 6
    with np.load(data_dir / "faithful" / "detections.npz", allow_pickle=False) as z:
        names = set(z["class_names"].tolist())
        assert len(z["sha256"]) == len(z["offsets"]) - 1 == len(z["size"])
    shown = [b for s in dd["samples"] for b in s["boxes"]]
    assert all(b[5] in names for b in shown)


def test_unpaired_when_another_seed(runs, tmp_path):
    data_dir, _ = runs
    other = tmp_path / "demo"
    shutil.copytree(data_dir / "faithful", other / "faithful")
    shutil.copytree(data_dir / "noisy", other / "noisy")
    mj = json.loads((other / "noisy" / "metrics.json").read_text())
    mj["bootstrap"]["seed"] = 7  # as a run with bootstrap.seed=7 records it
    (other / "noisy" / "metrics.json").write_text(json.dumps(mj))
    lb, _ = build(
        LeaderboardOptions(
            data="demo",
            results_dir=tmp_path,
            bootstrap=50,
            metrics=["clip_score"],
            aspects={"relevance": ["clip_score"]},
            formats=["json"],
        )
    )
    assert lb["bootstrap"]["unpaired_metrics"] == ["clip_score"] and lb["paired"] == []
    assert lb["bootstrap"]["seed"] == [0, 7]
