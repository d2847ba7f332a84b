"""Bootstrap repeatability (issue 15 item 4c): the same ``bootstrap.seed`` gives identical replicates, and from
them identical paired p-values and intervals, rank probabilities and Kendall τ (leaderboard), and identical
Kendall τ intervals against human ratings (agreement, per model and per image); another seed gives other draws.

Three runs of the tiny demo (three models, 6 prompts, CLIP-S as a mean cosine and IS: a mean-type and a feature-type
resampler) on one cache: seed 5, seed 5 again into another results folder, seed 6."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from helpers import tiny_demo_config
from tise_bench.agreement.human import agreement
from tise_bench.leaderboard.build import LeaderboardOptions, build
from tise_bench.runner import run

MODELS = ["faithful", "noisy", "collapsed"]


@pytest.fixture(scope="module")
def results(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("repeat")
    cache = root / "cache"
    for sub in ("weights", "weights-hashes"):
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, cache / sub)
    out = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out[name] = root / name
        run(
            tiny_demo_config(
                cache,
                out[name],
                f"model.suite=[{','.join(MODELS)}]",
                "metrics.ids=[clip_score,is]",
                "metrics.params.clip_score.convention=cosine",  # random CLIP: cos < 0, clipscore would be 0
                "bootstrap.replicates=200",
                "bootstrap.replicates_features=30",
                f"bootstrap.seed={seed}",
            )
        )
    return out


def _replicates(folder, model):
    with np.load(folder / "demo" / model / "bootstrap.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _leaderboard(folder):
    lb, _ = build(
        LeaderboardOptions(
            data="demo",
            results_dir=folder,
            bootstrap=200,
            metrics=["clip_score", "is"],
            aspects={"relevance": ["clip_score"], "realism": ["is"]},
            formats=["json"],
        )
    )
    return lb


def _uncertainty(lb):
    return {
        "paired": [(p["a"], p["b"], p["metric"], p["p"], tuple(p["ci"])) for p in lb["paired"]],
        "rank_probabilities": lb["rank_probabilities"],
        "kendall_tau": lb["kendall_tau"],
        "ci": {r["model"]: r["ci"] for r in lb["rows"]},
    }


def test_same_seed_same_replicates(results):
    for m in MODELS:
        a, b, c = (_replicates(results[k], m) for k in "abc")
        assert sorted(a) == ["clip_score", "is"] and len(a["clip_score"]) == 200 and len(a["is"]) == 30
        for mid in a:
            assert np.array_equal(a[mid], b[mid]), (m, mid)  # bit for bit
            if np.ptp(a[mid]) > 0:  # (random Inception gives some demo models IS = 1 on every replicate)
                assert not np.array_equal(a[mid], c[mid]), (m, mid)  # another seed draws other prompts
        assert np.ptp(a["clip_score"]) > 0, m


def test_same_seed_same_p_values_rank_probabilities_and_kendall_tau(results):
    a, b, c = (_uncertainty(_leaderboard(results[k])) for k in "abc")
    assert len(a["paired"]) == 2 * len(MODELS) * (len(MODELS) - 1) // 2  # both metrics, every pair
    assert len(a["kendall_tau"]) == 30 and len(a["rank_probabilities"]) == len(MODELS)
    assert a == b  # exactly equal: p-values, their intervals, rank probabilities, every Kendall τ replicate
    assert a["paired"] != c["paired"] and a["ci"] != c["ci"]


def test_same_seed_same_kendall_tau_intervals_against_human_ratings(results, tmp_path):
    by_model = tmp_path / "models.csv"
    by_model.write_text("model,score\nfaithful,5\nnoisy,3\ncollapsed,1\n")
    samples = pd.read_parquet(results["a"] / "demo" / "faithful" / "samples.parquet")
    ids = sorted(set(samples["id"]))
    rng = np.random.default_rng(0)
    by_image = tmp_path / "images.csv"
    by_image.write_text("model,id,score\n" + "".join(f"{m},{i},{rng.integers(1, 6)}\n" for m in MODELS for i in ids))

    def tau(folder, ratings, seed):
        rep = agreement(ratings, folder / "demo", n_boot=200, seed=seed)
        return {r["metric"]: r["kendall_tau_b"] for r in rep["rows"]}

    per_model = [tau(results[k], by_model, 0) for k in "ab"]
    assert per_model[0] == per_model[1] and all("ci" in v for v in per_model[0].values())
    per_image = [tau(results["a"], by_image, s) for s in (3, 3, 4)]
    assert per_image[0] == per_image[1] and all("ci" in v for v in per_image[0].values())
    assert per_image[0] != per_image[2]  # the seed is the only source of the per-image draws
