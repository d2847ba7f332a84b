"""A full, read-only or forbidden disk (issue 11 item 9) and files written as a set (item 8: prepare's manifests,
the five leaderboard files): one paragraph naming the folder and the fix, never a raw OSError traceback; no
temporary file left; the cache and results folders checked before any work; a failure midway keeps the previous
set whole; concurrent writers of one file never share a temporary name."""

from __future__ import annotations

import errno
import importlib
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_demo_config
from leaderboard.lb_helpers import write_run

import tise_bench.fsutil as fsutil
import tise_bench.runner as runner
from tise_bench.data.manifest import Record, load_manifest, write_manifest
from tise_bench.errors import StorageError
from tise_bench.features.bank import FeatureBank
from tise_bench.features.store import FeatureStore
from tise_bench.leaderboard.build import FORMATS, LeaderboardOptions, build
from tise_bench.prepare.common import Summary, write_subsets

_real_write_bytes = Path.write_bytes


def _disk_fills_after(monkeypatch, n_ok: int = 0, code: int = errno.ENOSPC, match: str = "") -> None:
    """Path.write_bytes succeeds ``n_ok`` times (for names containing ``match``), then writes half its bytes and
    fails as a full (or read-only) disk does. ``match`` is looked for in the whole path."""
    calls = {"n": 0}

    def write_bytes(self: Path, data: bytes) -> int:
        if match in str(self):
            calls["n"] += 1
            if calls["n"] > n_ok:
                _real_write_bytes(self, data[: len(data) // 2])
                raise OSError(code, "No space left on device" if code == errno.ENOSPC else "Read-only file system")
        return _real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_temp(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if ".tmp" in p.name or "write-probe" in p.name]
    assert left == [], f"temporary files left behind: {left}"


# --- the cache ---------------------------------------------------------------------------------------------------


def test_full_disk_while_writing_a_feature_shard(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "cache", "ns")
    _disk_fills_after(monkeypatch)
    with pytest.raises(StorageError) as ei:
        store.put(["k1", "k2"], {"pool3": np.ones((2, 4), np.float32)})
    msg = str(ei.value)
    assert f"cache folder {store.dir}: the disk is full" in msg
    assert "paths.cache_dir=" in msg and "cache_dir=" in msg and "\n" not in msg  # one paragraph, with the fix
    assert list(store.dir.iterdir()) == []  # no half-written shard, no temporary file


def test_full_disk_while_writing_reference_statistics(tmp_path, monkeypatch):
    bank = FeatureBank({}, tmp_path / "cache")

    def savez_on_full_disk(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tise_bench.features.bank.np.savez", savez_on_full_disk)
    with pytest.raises(StorageError, match=r"cache folder .*stats: the disk is full"):
        bank.cached_stats("k", lambda: (np.zeros(3), np.eye(3)))
    assert list((tmp_path / "cache" / "stats").iterdir()) == []


# --- checked before any work ---------------------------------------------------------------------------------------


def _nothing_computed(monkeypatch) -> None:
    def computed(*a, **k):
        raise AssertionError("work started before the folder was checked")

    monkeypatch.setattr(runner, "load_eval_set", computed)
    monkeypatch.setattr(runner, "build_backbones", computed)


def test_results_folder_under_a_regular_file_is_reported_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("not a folder")
    results = tmp_path / "afile" / "results"  # fails for root too (chmod would not)
    _nothing_computed(monkeypatch)
    with pytest.raises(StorageError) as ei:
        runner.run(tiny_demo_config(tmp_path / "cache", results))
    msg = str(ei.value)
    assert f"results folder {results}" in msg and "paths.results_dir=<folder>" in msg
    assert "is a file, not a folder" in msg or "a file is in the way" in msg


def test_read_only_cache_is_reported_before_any_work(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _disk_fills_after(monkeypatch, code=errno.EROFS, match="/cache/.write-probe")  # as on a read-only mount
    _nothing_computed(monkeypatch)
    with pytest.raises(StorageError) as ei:
        runner.run(tiny_demo_config(cache, tmp_path / "results"))
    msg = str(ei.value)
    assert f"cache folder {cache}: the file system is read-only" in msg
    assert "writable disk" in msg and "paths.cache_dir=<folder>" in msg
    _no_temp(tmp_path)


def test_a_disk_with_no_free_space_is_reported_before_any_work(tmp_path, monkeypatch):
    real_usage = fsutil.shutil.disk_usage
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=0))
    _nothing_computed(monkeypatch)
    with pytest.raises(StorageError, match=r"results folder .*results: the disk is full .*free space there"):
        runner.run(tiny_demo_config(tmp_path / "cache", tmp_path / "results"))
    _no_temp(tmp_path)


@pytest.mark.parametrize("key,what", [("results_dir", "results folder"), ("cache_dir", "cache folder")])
def test_the_cli_prints_one_paragraph_not_a_traceback(tmp_path, key, what):
    """Hydra makes its run folder under paths.results_dir before the task runs: checked in a Hydra callback."""
    import subprocess
    import sys

    (tmp_path / "afile").write_text("x")
    p = subprocess.run(
        [sys.executable, "-m", "tise_bench", "backbones=random", f"paths.{key}={tmp_path}/afile/x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "Error executing job" not in p.stderr
    assert f"tise_bench: error: cannot write to the {what} {tmp_path}/afile/x: " in p.stderr
    assert not list(tmp_path.rglob(".hydra")), "Hydra started before the folders were checked"


# --- prepare's manifests ---------------------------------------------------------------------------------------------


def _records(tag: str, n: int = 50) -> list[Record]:
    return [Record(id=f"{tag}{i:04d}", caption=f"caption {tag} {i} " + "x" * 200) for i in range(n)]


def test_concurrent_writers_of_one_manifest_never_share_a_temporary_name(tmp_path, monkeypatch):
    path = tmp_path / "S1.jsonl"
    temps: list[Path] = []
    real_temp = fsutil.temp_path
    monkeypatch.setattr(fsutil, "temp_path", lambda p: temps.append(real_temp(p)) or temps[-1])
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            for _ in range(40):
                write_manifest(path, _records(tag), seed=0, subset="S1")
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(temps) == 80 and len(set(temps)) == 80  # every write its own temporary name
    assert {r.id[0] for r in load_manifest(path)} in ({"a"}, {"b"})  # one writer's manifest, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1.jsonl"]


def test_prepare_writes_its_manifests_as_a_set(tmp_path, monkeypatch):
    out = tmp_path / "manifests"
    write_subsets(out, {"S1": _records("a"), "S2": _records("b")}, 0, Summary(), None)
    before = _tree(out)
    _disk_fills_after(monkeypatch, n_ok=1, match=".jsonl")  # the second manifest hits a full disk
    with pytest.raises(StorageError, match=rf"manifest folder {out}: the disk is full .*out=<folder>"):
        write_subsets(out, {"S1": _records("c"), "S2": _records("d")}, 1, Summary(), None)
    assert _tree(out) == before  # the first new manifest was not put beside an old second one
    _no_temp(out)


# --- the five leaderboard files --------------------------------------------------------------------------------------


def _board(root: Path, a: float) -> dict[str, bytes]:
    write_run(root, "d", "m1", {"clip_rp": a, "fid": 30.0})
    write_run(root, "d", "m2", {"clip_rp": 50.0, "fid": 20.0})
    build(LeaderboardOptions(data="d", results_dir=root))
    return {n: b for n, b in _tree(root / "d").items() if n.startswith("leaderboard.")}


def test_a_failure_while_writing_the_third_leaderboard_file_keeps_the_previous_set(tmp_path, monkeypatch):
    first = _board(tmp_path, 60.0)
    assert sorted(first) == sorted(f"leaderboard.{f}" for f in FORMATS)
    _disk_fills_after(monkeypatch, n_ok=2, match="/.leaderboard.")  # files 1 and 2 written, the 3rd fails
    with pytest.raises(StorageError, match=rf"leaderboard folder {tmp_path / 'd'}: the disk is full"):
        _board(tmp_path, 40.0)
    assert {n: b for n, b in _tree(tmp_path / "d").items() if n.startswith("leaderboard.")} == first
    _no_temp(tmp_path / "d")
    monkeypatch.undo()
    second = _board(tmp_path, 40.0)
    assert all(second[n] != first[n] for n in first)  # every file of the new build replaced


def test_a_renderer_crash_keeps_the_previous_set(tmp_path, monkeypatch):
    first = _board(tmp_path, 60.0)

    def crash(*a, **k):
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(importlib.import_module("tise_bench.leaderboard.build"), "to_latex", crash)  # 3rd format
    with pytest.raises(RuntimeError, match="renderer bug"):
        _board(tmp_path, 40.0)
    assert {n: b for n, b in _tree(tmp_path / "d").items() if n.startswith("leaderboard.")} == first
    _no_temp(tmp_path / "d")


def test_formats_not_rebuilt_are_removed_not_left_stale(tmp_path):
    _board(tmp_path, 60.0)
    write_run(tmp_path, "d", "m1", {"clip_rp": 40.0, "fid": 30.0})
    build(LeaderboardOptions(data="d", results_dir=tmp_path, formats=["csv", "md"]))
    assert sorted(p.name for p in (tmp_path / "d").glob("leaderboard.*")) == ["leaderboard.csv", "leaderboard.md"]


def test_leaderboard_folder_not_writable_is_reported_before_building(tmp_path, monkeypatch):
    write_run(tmp_path, "d", "m1", {"clip_rp": 60.0, "fid": 30.0})
    lb_build = importlib.import_module("tise_bench.leaderboard.build")  # the package exports a function "build"
    monkeypatch.setattr(lb_build, "collect_runs", lambda *a: pytest.fail("built first"))
    _disk_fills_after(monkeypatch, code=errno.EROFS, match="write-probe")
    with pytest.raises(StorageError, match=rf"leaderboard folder {tmp_path / 'd'}: the file system is read-only"):
        build(LeaderboardOptions(data="d", results_dir=tmp_path))
