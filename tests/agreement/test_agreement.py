"""Meta-evaluation (issue 12): agreement statistics against hand-computed answers and a from-scratch pair count,
and the ratings file -> run folders -> agreement report path, per model and per image, through the CLI."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tise_bench.agreement.human import agreement, read_ratings
from tise_bench.agreement.stats import kendall_tau, pairwise_accuracy, spearman
from tise_bench.errors import DataError


# ------------------------------------------------------------------------------------- statistics, by hand
def test_statistics_on_a_hand_computed_example_without_ties():
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]  # 5 concordant pairs, 1 discordant
    assert kendall_tau(x, y, "b") == pytest.approx(4 / 6, abs=1e-12)
    assert kendall_tau(x, y, "c") == pytest.approx(0.6666666666666666, abs=1e-12)  # 2·4 / (16·3/4)
    assert spearman(x, y) == pytest.approx(0.8, abs=1e-12)  # 1 − 6·2 / (4·15)
    assert pairwise_accuracy(x, y) == pytest.approx(5 / 6, abs=1e-12)


def test_statistics_on_a_hand_computed_example_with_ties():
    x, y = [1, 1, 2, 3], [1, 2, 3, 4]  # pair (0, 1) tied in x only: neither concordant nor discordant
    assert kendall_tau(x, y, "b") == pytest.approx(0.9128709291752769, abs=1e-12)  # 5 / √(5·6)
    assert kendall_tau(x, y, "c") == pytest.approx(0.9375, abs=1e-12)  # 2·5 / (16·2/3), m = 3 distinct x
    assert spearman(x, y) == pytest.approx(0.9486832980505138, abs=1e-12)  # Pearson of average ranks
    assert pairwise_accuracy(x, y) == pytest.approx(5 / 6, abs=1e-12)  # tied on one side = disagreement
    assert pairwise_accuracy([1, 1, 2], [5, 5, 6]) == 1.0  # tied on both sides = agreement


def _brute_force(x, y):
    """C, D, ties in x only, ties in y only, ties in both, counted over every pair."""
    c = d = tx = ty = txy = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            txy += 1
        elif sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    return c, d, tx, ty, txy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tau_b_and_pairwise_accuracy_equal_a_from_scratch_pair_count(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 5, 60).astype(float), rng.integers(0, 4, 60).astype(float)  # many ties
    c, d, tx, ty, txy = _brute_force(x, y)
    n0 = 60 * 59 / 2
    assert kendall_tau(x, y, "b") == pytest.approx((c - d) / math.sqrt((c + d + tx) * (c + d + ty)), abs=1e-12)
    assert pairwise_accuracy(x, y) == pytest.approx((c + txy) / n0, abs=1e-12)


def test_undefined_cases_are_nan():
    assert math.isnan(kendall_tau([1, 2], [1, 2]))  # fewer than 3 items
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # constant metric
    assert math.isnan(pairwise_accuracy([1, np.nan, 3], [1, 2, 3]))  # NaN rows dropped -> 2 items


# ------------------------------------------------------------------------------------ run folders + ratings
def _run(root: Path, model: str, values: dict[str, float], reps: dict[str, np.ndarray] | None = None, samples=None):
    d = root / model
    d.mkdir(parents=True)
    meta = {"model": model, "metrics": {m: {"value": v} for m, v in values.items()}}
    if reps:
        meta["bootstrap"] = {"seed": 0, "file": "bootstrap.npz", "metrics": {m: {"draw_key": "k"} for m in reps}}
        np.savez(d / "bootstrap.npz", **reps)
    (d / "metrics.json").write_text(json.dumps(meta))
    if samples is not None:
        pd.DataFrame(samples).to_parquet(d / "samples.parquet", index=False)


def test_per_model_agreement_orients_lower_is_better_and_uses_paired_replicates(tmp_path):
    root = tmp_path / "results" / "d"
    clip = [0.1, 0.3, 0.2, 0.4]
    fid = [40.0, 30.0, 20.0, 10.0]
    for i in range(4):
        reps = {
            "fid": fid[i] + np.linspace(-1, 1, 7),
            "clip_score": clip[i] + np.array([0, 0, 0, 0, 0, 0.15, -0.15]) * (i % 2),
        }
        _run(root, f"m{i}", {"fid": fid[i], "clip_score": clip[i]}, reps)
    ratings = tmp_path / "human.csv"
    ratings.write_text("model,score\nm0,1\nm1,2\nm2,2.5\nm2,3.5\nm3,4\nnot_run,9\n")  # m2: two raters -> 3
    rep = agreement(ratings, root, n_boot=1000, level=0.9)
    assert rep["level"] == "model" and rep["unmatched"] == ["not_run"] and rep["n_ratings"] == 6
    fid_row, clip_row = rep["rows"]  # best τ-b first
    assert fid_row["metric"] == "fid" and fid_row["kendall_tau_b"]["value"] == pytest.approx(1.0)
    assert fid_row["kendall_tau_b"]["ci"] == [pytest.approx(1.0), pytest.approx(1.0)] and fid_row["replicates"] == 7
    assert clip_row["kendall_tau_b"]["value"] == pytest.approx(4 / 6)
    lo, hi = clip_row["kendall_tau_b"]["ci"]
    assert lo == pytest.approx(4 / 6) and hi > 0.8  # replicate 7 orders the models as the humans do (τ 1)


def test_per_model_without_paired_replicates_has_no_interval_and_says_why(tmp_path):
    root = tmp_path / "results" / "d"
    for i in range(3):
        _run(root, f"m{i}", {"fid": 10.0 - i}, {"fid": np.full(3, 10.0 - i)} if i else None)
    ratings = tmp_path / "h.csv"
    ratings.write_text("model,score\nm0,1\nm1,2\nm2,3\n")
    [row] = agreement(ratings, root, n_boot=100)["rows"]
    assert "ci" not in row["kendall_tau_b"] and row["note"].startswith(
        "no interval: no bootstrap replicates in the run of m0"
    )


def test_per_image_agreement_pools_models_and_bootstraps_prompt_ids(tmp_path):
    root = tmp_path / "results" / "d"
    for m, vals in (("a", [0.1, 0.2, 0.3]), ("b", [0.15, 0.25, 0.05])):
        rows = [
            {"subset": "realism", "id": str(i), "k": 0, "file": "x", "sha256": "s", "caption": "c", "clip_score": v}
            for i, v in enumerate(vals)
        ]
        rows.append({**rows[0], "subset": "rp", "clip_score": np.nan})  # same image in a second subset
        _run(root, m, {"clip_score": float(np.mean(vals))}, samples=rows)
    ratings = tmp_path / "h.csv"
    ratings.write_text("model,id,score\na,0,1\na,1,2\na,2,3\nb,0,2.5\nb,1,4\nb,2,0\nb,9,5\n")
    rep = agreement(ratings, root, n_boot=200, seed=3)
    [row] = rep["rows"]
    x = np.array([0.1, 0.2, 0.3, 0.15, 0.25, 0.05])
    y = np.array([1, 2, 3, 2.5, 4, 0])
    c, d, *_ = _brute_force(x, y)
    assert rep["level"] == "image" and rep["images_matched"] == 6 and rep["images_rated"] == 7
    assert row["n"] == 6 and row["kendall_tau_b"]["value"] == pytest.approx((c - d) / 15)
    assert row["replicates"] == 200 and row["kendall_tau_b"]["ci"][0] <= row["kendall_tau_b"]["value"]
    again = agreement(ratings, root, n_boot=200, seed=3)
    assert again["rows"][0]["kendall_tau_b"]["ci"] == row["kendall_tau_b"]["ci"]  # seeded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,rating\nm0,1\n", "must name a 'model' and a 'score' column"),
        ("model,score\nm0,good\n", "line 2: score 'good' is not a number"),
        ("model,score\n", "no ratings"),
        ("model,id,score\nm0,,1\n", "line 2: empty id"),
    ],
)
def test_bad_ratings_file_names_the_file_and_line(tmp_path, text, message):
    p = tmp_path / "h.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        read_ratings(p)
    assert str(p) in str(e.value)


def test_cli_writes_the_three_files_and_refuses_too_few_models(tmp_path):
    root = tmp_path / "results" / "d"
    for i in range(3):
        _run(root, f"m{i}", {"clip_score": 0.1 * i})
    ratings = tmp_path / "h.csv"
    ratings.write_text("model,score\nm0,1\nm1,3\nm2,2\n")
    cmd = [
        sys.executable,
        "-m",
        "tise_bench.agreement",
        "data=d",
        f"human={ratings}",
        f"paths.results_dir={tmp_path / 'results'}",
    ]
    out = subprocess.run([*cmd, "bootstrap=0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| clip_score | 3 | 0.333 |" in out.stdout
    saved = json.loads((root / "agreement.json").read_text())
    assert saved["rows"][0]["spearman"]["value"] == pytest.approx(0.5)
    assert (root / "agreement.csv").read_text().splitlines()[0].startswith("metric,n,kendall_tau_b,")
    ratings.write_text("model,score\nm0,1\nmissing,2\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "only 1 of its 2 models have a run folder" in bad.stderr


def test_leaderboard_human_adds_the_agreement_section(tmp_path):
    from tise_bench.leaderboard.build import LeaderboardOptions, build

    root = tmp_path / "results" / "d"
    for i, (fid, clip) in enumerate([(30.0, 0.2), (20.0, 0.1), (10.0, 0.3)]):
        _run(root, f"m{i}", {"fid": fid, "clip_score": clip})
    ratings = tmp_path / "h.csv"
    ratings.write_text("model,score\nm0,1\nm1,2\nm2,3\n")
    opts = LeaderboardOptions.from_config(
        {
            "data": "d",
            "paths": {"results_dir": str(tmp_path / "results")},
            "leaderboard": {"aspects": {"realism": ["fid"]}, "human": str(ratings), "formats": ["json", "html"]},
        }
    )
    lb, written = build(opts)
    rows = {r["metric"]: r for r in lb["agreement"]["rows"]}
    assert rows["fid"]["kendall_tau_b"]["value"] == pytest.approx(1.0)
    assert rows["clip_score"]["kendall_tau_b"]["value"] == pytest.approx(1 / 3)
    assert "Kendall τ-b with the human ratings" in written["html"].read_text()
    assert json.loads(written["json"].read_text())["agreement"]["level"] == "model"


def test_aspect_presets():
    from tise_bench.errors import ConfigError
    from tise_bench.leaderboard.build import LeaderboardOptions

    def aspects(value):
        return LeaderboardOptions.from_config({"data": "d", "leaderboard": {"aspects": value}}).aspects

    assert aspects("tise") == aspects(None) and list(aspects(None)) == [
        "realism",
        "relevance",
        "object accuracy",
        "object fidelity",
        "counting",
        "position",
    ]
    assert aspects("modern") == {
        "fidelity": ["fd_dinov2", "cmmd", "precision"],
        "diversity": ["recall", "coverage"],
        "alignment": ["clip_score", "geneval"],
        "composition": ["compbench_spatial", "compbench_numeracy"],
        "preference": ["hpsv2", "aesthetic"],
    }
    with pytest.raises(ConfigError, match="presets: tise, modern"):
        aspects("fancy")
