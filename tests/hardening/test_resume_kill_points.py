"""SIGKILL at the two writes after extraction (issue 15 item 4b): while the reference statistics are written into
``<cache>/stats`` and while the run folder is written. Each kill is a real SIGKILL the run sends itself in the
middle of the write (the file it was writing cut to half its size, as an interrupted write leaves it), through a
hook on the write function only; the re-run completes, equals an uninterrupted run and reads nothing partial.

Tiniest config: FID only (Inception, random weights), 4 images and 4 references of 32 px, 10 FID replicates.
The command line, environment and value check are those of the mid-extraction SIGKILL test."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tise_bench
from hardening.test_resume_concurrency import _args, _assert_values, _cache_with_weights, _env, _random_cfg, _saved
from helpers import structured_images
from tise_bench.features.bank import _stats_checksum
from tise_bench.leaderboard.collect import find_runs

N = 4
TINY = ["metrics.ids=[fid]", "bootstrap.replicates_features=10"]

#: Runs the CLI with one write hooked: the hook lets the write happen, cuts the file to half its size and
#: SIGKILLs the process (no Python cleanup runs: no ``finally``, no temporary removed).
KILLER = """
import os, signal, sys

point, sys.argv = sys.argv[1], ["tise_bench", *sys.argv[2:]]


def cut_and_die(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    os.kill(os.getpid(), signal.SIGKILL)


if point == "stats":  # the reference statistics file in <cache>/stats
    import tise_bench.features.bank as bank

    real_write = bank.atomic_write

    def write(path, writer, *a):
        def half(tmp):
            writer(tmp)
            cut_and_die(tmp)

        return real_write(path, half, *a)

    bank.atomic_write = write
elif point == "results":  # samples.parquet, the first file of the run folder
    import pandas as pd

    real_parquet = pd.DataFrame.to_parquet

    def to_parquet(self, path, *a, **k):
        real_parquet(self, path, *a, **k)
        cut_and_die(path)

    pd.DataFrame.to_parquet = to_parquet
elif point == "swap":  # the run folder written whole, killed between the renames that put it in place
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if ".tmp-" in os.path.basename(str(src)) and os.path.isdir(src):  # the new folder, about to move in
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *a, **k)

    os.replace = replace
else:
    raise SystemExit(f"unknown kill point {point!r}")

from tise_bench.__main__ import main

main()
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("kill")
    for name, seed in (("a", 31), ("refs", 32)):
        structured_images(root / name, N, seed=seed, size=32)
    man = root / "m.jsonl"
    man.write_text(
        "".join(
            json.dumps({"id": f"{i:04d}", "caption": f"shapes {i}", "reference": f"refs/{i:04d}.png"}) + "\n"
            for i in range(N)
        )
    )
    weights = session_cache  # the session's random weights files: no Inception init per run
    res = tise_bench.evaluate(
        root / "a",
        manifest=man,
        metrics=["fid"],
        backbones=_random_cfg(),
        cache_dir=_cache_with_weights(weights, root / "api-cache"),
        batch_size=4,
    )
    return {"root": root, "man": man, "weights": weights, "expected": res.values()}


def _cli(tiny, cache: Path, results: Path, kill: str | None, cwd: Path) -> subprocess.CompletedProcess:
    args = [a for a in _args(tiny, "a", cache, results) if not a.startswith("metrics.ids=")] + TINY
    cmd = args if kill is None else [sys.executable, "-c", KILLER, kill, *args[3:]]  # args[:3]: python -m tise_bench
    return subprocess.run(cmd, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=600)


def test_sigkill_while_writing_statistics_then_results_then_rerun(tiny, tmp_path):
    cache = _cache_with_weights(tiny["weights"], tmp_path / "cache")
    results = tmp_path / "res"
    stats = cache / "stats"

    # 1. killed while the reference statistics are written: only a half-written temporary is left
    p = _cli(tiny, cache, results, "stats", tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    left = list(stats.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".") and left[0].name.endswith(".tmp"), left
    assert not list(stats.glob("*.npz")) and not (results / "t" / "a" / "metrics.json").exists()

    # 2. the re-run is killed while it writes the run folder: the statistics are whole now, no metrics.json
    p = _cli(tiny, cache, results, "results", tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    [final] = stats.glob("*.npz")
    with np.load(final, allow_pickle=False) as z:  # written whole and checksummed, not the half file
        assert str(z["checksum"]) == _stats_checksum(z["mu"], z["sigma"])
    data_dir = results / "t"
    partial = [d for d in data_dir.iterdir() if d.name.startswith(".a.tmp-")]
    assert len(partial) == 1 and not (partial[0] / "metrics.json").exists()
    assert not (data_dir / "a").exists() and find_runs(data_dir) == []  # nothing half-written is a run

    # 3. the re-run completes with the uninterrupted values, from the cached features
    p = _cli(tiny, cache, results, None, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    saved = _saved(results, "a")
    _assert_values(saved, tiny["expected"])
    assert set(saved["backbone_forwards"].values()) == {0}, saved["backbone_forwards"]
    assert find_runs(data_dir) == [data_dir / "a"]  # the killed run's dot-folder is never read as a run
    assert len(pd.read_parquet(data_dir / "a" / "samples.parquet")) == N
    assert list(stats.glob("*.npz")) == [final]


def test_sigkill_between_the_run_folders_renames_then_the_next_reader_puts_it_back(tiny, tmp_path):
    """Killed after the old run folder was moved away and before the new one moved in: no run folder is left in
    place; the next reader (the leaderboard's find_runs) restores the newest complete one, the killed run's."""
    cache = _cache_with_weights(tiny["weights"], tmp_path / "cache")
    results = tmp_path / "res"
    data_dir = results / "t"
    assert _cli(tiny, cache, results, None, tmp_path).returncode == 0
    p = _cli(tiny, cache, results, "swap", tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert not (data_dir / "a").exists()
    left = sorted(d.name.split("-")[0] for d in data_dir.iterdir())
    assert left == [".a.old", ".a.tmp"], left
    assert find_runs(data_dir) == [data_dir / "a"]
    assert [d.name.split("-")[0] for d in data_dir.iterdir() if d.name.startswith(".")] == [".a.old"]  # the new one
    _assert_values(_saved(results, "a"), tiny["expected"])
