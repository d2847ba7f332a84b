"""``python -m tise_bench.leaderboard`` as a user runs it, on hand-written results; and the packaged config."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from tise_bench.leaderboard.build import LeaderboardOptions, build
from tise_bench.leaderboard.schema import TISE_ASPECTS

from .lb_helpers import write_csv, write_run

ALL = {
    "is_star": 20.0,
    "fid": 30.0,
    "clip_rp": 60.0,
    "soa_c": 50.0,
    "soa_i": 60.0,
    "o_is": 5.0,
    "o_fid": 40.0,
    "ca": 2.0,
    "pa": 30.0,
}


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TISE_CACHE_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "tise_bench.leaderboard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "TISE_CACHE_DIR": str(cwd.parent / "cache")},
    )


def _results(root: Path) -> Path:
    write_run(root, "tiny", "good_model", ALL, random_weights=True)
    write_run(root, "tiny", "bad_model", {**ALL, "fid": 90.0, "is_star": 5.0, "ca": 3.0})
    write_run(root, "tiny", "stray", {"fid": 1.0}, folder=".hydra")  # dot-folders are not runs
    return root


def test_cli_writes_all_files_and_nothing_in_cwd(tmp_path):
    results = _results(tmp_path / "results")
    extra = write_csv(
        tmp_path / "paper.csv", "method,IS*,FID,RP,SOA-C,SOA-I,O-IS,O-FID,CA,PA\nPaper_GAN,25,20,70,40,50,6,30,1.0,40"
    )
    cwd = tmp_path / "cwd"
    p = _cli(["data=tiny", f"paths.results_dir={results}", f"leaderboard.extra_rows={extra}"], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 rows ranked on tiny" in p.stdout and "RANDOM-WEIGHTS" in p.stderr
    table = p.stdout[p.stdout.index("#  model") :]  # the ranked table, in the files' order
    assert table.index("Paper_GAN†") < table.index("good_model‡") < table.index("bad_model")
    formats = ["csv", "md", "tex", "json"] + (
        ["html"] if importlib.util.find_spec("tise_bench.leaderboard.html") else []
    )
    out = results / "tiny"
    for fmt in formats:
        assert (out / f"leaderboard.{fmt}").stat().st_size > 0, fmt
    assert list(cwd.iterdir()) == [], "Hydra left outputs/, .hydra/ or a log file in the working directory"
    lb = json.loads((out / "leaderboard.json").read_text())
    assert [r["model"] for r in lb["rows"]] == ["Paper_GAN", "good_model", "bad_model"]
    assert lb["rows"][0]["external"] is True and lb["random_weights"] == ["good_model"]
    assert r"Paper\_GAN$^\dagger$" in (out / "leaderboard.tex").read_text()
    assert "good_model‡" in (out / "leaderboard.md").read_text()

    p = _cli(
        ["data=tiny", f"paths.results_dir={results}", "leaderboard.metrics=[FID,RP]", "leaderboard.drilldown=nobody"],
        cwd,
    )
    assert p.returncode == 2 and "leaderboard.drilldown='nobody'" in p.stderr and "Traceback" not in p.stderr
    assert list(cwd.iterdir()) == []


def test_compose_packaged_config_then_build(tmp_path):
    results = _results(tmp_path / "results")
    with initialize_config_module(version_base="1.3", config_module="tise_bench.leaderboard.conf"):
        cfg = compose(
            "leaderboard",
            overrides=[
                "data=tiny",
                f"paths.results_dir={results}",
                "leaderboard.aspects={realism:[FID,IS*],counting:[CA]}",
                "leaderboard.formats=[csv,json]",
                "leaderboard.decimals=3",
            ],
        )
        default = compose("leaderboard", overrides=["data=tiny"])
    opts = LeaderboardOptions.from_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    assert opts.aspects == {"realism": ["FID", "IS*"], "counting": ["CA"]} and opts.decimals == 3
    lb, files = build(opts)
    assert set(files) == {"csv", "json"} and lb["aspects"] == {"realism": ["fid", "is_star"], "counting": ["ca"]}
    assert {r["model"]: r["rs"] for r in lb["rows"]} == {"good_model": 4.0, "bad_model": 2.0}
    d = LeaderboardOptions.from_config(OmegaConf.to_container(default, resolve=True))  # type: ignore[arg-type]
    assert d.aspects == TISE_ASPECTS and d.on_missing == "error" and d.bootstrap == 0 and d.allow_mixed is False
    assert d.results_dir == Path("results") and "cache_dir" not in default.paths  # reads run folders only
