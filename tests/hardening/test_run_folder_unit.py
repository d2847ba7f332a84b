"""A run folder is written as a unit (issue 11 item 8): a failure midway leaves the previous run intact — never new
samples beside old metrics — and no temporary folder; a folder holding other files is never replaced."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pandas as pd
import pytest

import tise_bench.results as results
from tise_bench.errors import DataError, StorageError
from tise_bench.results import EvalResult
from tise_bench.types import MetricValue


def _result(value: float, with_replicates: bool) -> EvalResult:
    table = pd.DataFrame({"subset": ["realism"] * 3, "id": ["a", "b", "c"], "clip_score": [value] * 3})
    res = EvalResult(model="m", data="d", metrics={"clip_score": MetricValue(value, 3)}, meta={}, samples=table)
    if with_replicates:
        res.replicates = {"clip_score": np.full(5, value)}
    return res


def _state(folder):
    mj = json.loads((folder / "metrics.json").read_text())
    return mj["metrics"]["clip_score"]["value"], pd.read_parquet(folder / "samples.parquet")["clip_score"].tolist()


def test_a_failure_midway_keeps_the_previous_run_whole(tmp_path, monkeypatch):
    out = tmp_path / "d" / "m"
    _result(1.0, with_replicates=True).write(out)
    assert _state(out) == (1.0, [1.0] * 3) and (out / "bootstrap.npz").is_file()

    def full_disk(path, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "_save_npz", full_disk)  # fails after the new samples.parquet was written
    with pytest.raises(StorageError, match=r"results folder .*d: the disk is full"):
        _result(2.0, with_replicates=True).write(out)
    assert _state(out) == (1.0, [1.0] * 3)  # old metrics with old samples, never a mix
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no temporary folder left behind

    monkeypatch.undo()
    _result(3.0, with_replicates=False).write(out)
    assert _state(out) == (3.0, [3.0] * 3) and not (out / "bootstrap.npz").exists()  # no stale file
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]


def test_a_folder_with_other_files_is_refused_not_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"notes\.txt.*new or empty folder"):
        _result(1.0, with_replicates=False).write(out)
    assert (out / "notes.txt").read_text() == "keep me" and not (out / "metrics.json").exists()


def _shard(store_dir, keys, arrays):
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, keys=np.asarray(keys), **arrays)
    data = buf.getvalue()
    (store_dir / f"{hashlib.blake2b(data, digest_size=16).hexdigest()}.npz").write_bytes(data)  # a valid name


def test_a_shard_renamed_to_its_digest_is_still_checked_for_structure(tmp_path, caplog):
    """Issue 11 item 14: the checksum only catches accidents; a well-named shard with the wrong row count is reported
    and ignored (its rows are recomputed), and rows of another shape than the namespace's are a clear error."""
    from tise_bench.errors import DataError
    from tise_bench.features.store import FeatureStore

    good = FeatureStore(tmp_path, "ns")
    good.put(["a" * 64], {"pool3": np.ones((1, 4), np.float32)})
    _shard(good.dir, ["b" * 64, "c" * 64], {"pool3": np.ones((3, 4), np.float32)})  # 2 keys, 3 rows
    _shard(good.dir, ["d" * 64], {"pool3": np.ones((1, 5), np.float32)})  # another row shape
    store = FeatureStore(tmp_path, "ns")
    assert "a" * 64 in store and "b" * 64 not in store and "c" * 64 not in store
    assert store.n_corrupt == 1 and "corrupt" in caplog.text
    assert store.get(["a" * 64], ("pool3",))["pool3"].shape == (1, 4)
    with pytest.raises(DataError, match=r"'pool3' rows are float32 \(5,\).*fix: delete"):
        store.get(["a" * 64, "d" * 64], ("pool3",))


def _dead_pid() -> int:
    """The pid of a process that has exited (a writer killed long ago)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def test_a_run_folder_left_out_of_place_by_a_killed_writer_is_put_back(tmp_path, caplog, monkeypatch):
    """A writer SIGKILLed between its two renames leaves no run folder: the previous run as ``.m.old-…`` and the new
    one, complete, as ``.m.tmp-…``. The next reader (find_runs) or writer puts the newest complete one back, never
    a cut one, and never the folder of a writer still alive (it is between its renames and finishes itself)."""
    from tise_bench.leaderboard.collect import find_runs

    data = tmp_path / "d"
    out = data / "m"
    _result(1.0, with_replicates=False).write(out)
    _result(2.0, with_replicates=False).write(data / "new")
    dead = _dead_pid()
    (data / "m").rename(data / f".m.old-{dead}-7-0")
    (data / "new").rename(data / f".m.tmp-{dead}-7")
    assert find_runs(data) == [out]  # the killed writer's new run, the newer of the two
    assert _state(out) == (2.0, [2.0] * 3) and (data / f".m.old-{dead}-7-0").is_dir()
    assert "restored it from .m.tmp-" in caplog.text

    # the new run cut while its metrics.json was written: the previous run comes back
    (data / "m").rename(data / f".m.tmp-{dead}-8")
    (data / f".m.tmp-{dead}-8" / "metrics.json").write_text('{"schema_version": 1, "metr')
    assert find_runs(data) == [out] and _state(out) == (1.0, [1.0] * 3)

    # a live writer (this process) between its renames: left alone
    (data / "m").rename(data / f".m.old-{os.getpid()}-9-0")
    assert find_runs(data) == [] and not out.exists()
    assert results.recover_run_folder(out) is None

    # a writer after a killed one puts the previous run back first: if its own write fails, that run is in place
    (data / f".m.old-{os.getpid()}-9-0").rename(data / f".m.old-{dead}-9-0")

    def full_disk(path, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "_save_npz", full_disk)
    with pytest.raises(StorageError):
        _result(3.0, with_replicates=True).write(out)
    assert _state(out) == (1.0, [1.0] * 3)
    monkeypatch.undo()
    _result(3.0, with_replicates=True).write(out)
    assert _state(out) == (3.0, [3.0] * 3) and find_runs(data) == [out]


def test_leftover_folder_names_are_parsed_by_one_rule(tmp_path):
    """Run names with dots and dashes; only the writer's own two patterns count, nothing else hidden."""
    for name in (
        ".dfgan.v2.tmp-41-7",
        ".dfgan.v2.old-41-7-0",
        ".my-model.old-9-3-12",
        ".m.tmp-x-1",
        ".m.tmp-",
        ".cache",
    ):
        (tmp_path / name).mkdir()
    got = sorted((n, k, pid, p.name) for n, k, pid, p in results.leftover_run_folders(tmp_path))
    assert got == [
        ("dfgan.v2", "old", 41, ".dfgan.v2.old-41-7-0"),
        ("dfgan.v2", "tmp", 41, ".dfgan.v2.tmp-41-7"),
        ("my-model", "old", 9, ".my-model.old-9-3-12"),
    ]
