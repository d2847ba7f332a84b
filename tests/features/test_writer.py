"""Cache shards written by a background thread (issue 13 item 3): rows are found and served at once, the files are
the same, a failed write is raised, and a pass that fails leaves on disk what the serial path leaves. Also: the crop
plan read from the detections just computed equals the one read back from the cache."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from helpers import RANDOM_BACKBONES, cached_keys, structured_images
from tise_bench.backbones import build_backbones
from tise_bench.features import store as store_mod
from tise_bench.features.bank import CropRequest, FeatureBank
from tise_bench.features.crops import CropSpec
from tise_bench.features.store import FeatureStore, ShardWriter

BCFG = {**RANDOM_BACKBONES, "detector": {"arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.001, "max_crops": 3}}
NEEDS = {"clip": {"image"}, "inception": {"pool3"}, "detector": {"detections", "size"}}
CROPS = CropRequest(spec=CropSpec(threshold=0.0, max_per_image=3), backbones={"inception": ""})


def _rows(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(n, 5)).astype(np.float32), "b": rng.integers(0, 9, size=(n,))}


def test_pending_rows_are_served_from_memory_then_from_the_file(tmp_path) -> None:
    st, writer = FeatureStore(tmp_path, "ns"), ShardWriter(max_pending=2)
    gate = threading.Event()
    writer.submit(gate.wait)  # the writer is busy: the next shard stays pending
    st.writer = writer
    rows = _rows(3, 0)
    st.put(["k0", "k1", "k2"], rows)
    assert "k1" in st and not list(st.dir.glob("*.npz"))
    got = st.get(["k2", "k0"], ("a", "b"))
    np.testing.assert_array_equal(got["a"], rows["a"][[2, 0]])
    np.testing.assert_array_equal(got["b"], rows["b"][[2, 0]])
    gate.set()
    writer.close()
    (shard,) = st.dir.glob("*.npz")
    sync = FeatureStore(tmp_path / "sync", "ns")  # the same shard, written in the caller's thread
    sync.put(["k0", "k1", "k2"], rows)
    assert [p.name for p in sync.dir.glob("*.npz")] == [shard.name]
    fresh = FeatureStore(tmp_path, "ns")
    for key in ("k0", "k1", "k2"):
        assert st._index[key][0] == shard  # the index now points at the file
    np.testing.assert_array_equal(fresh.get(["k2", "k0"], ("a",))["a"], rows["a"][[2, 0]])


def test_a_failed_write_is_raised_by_the_next_submit_or_flush(tmp_path, monkeypatch) -> None:
    def disk_full(path, data, place):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(store_mod, "atomic_write_bytes", disk_full)
    st, writer = FeatureStore(tmp_path, "ns"), ShardWriter()
    st.writer = writer
    st.put(["k0"], _rows(1, 1))
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    st.put(["k1"], _rows(1, 2))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert not list(st.dir.glob("*.npz"))


@pytest.fixture(scope="module")
def backbones(session_cache):  # the session's random weights (the detector's are added there once)
    return build_backbones(BCFG, {"clip", "inception", "detector"}, session_cache)


def test_a_failing_pass_leaves_on_disk_what_the_serial_path_leaves(backbones, tmp_path, monkeypatch) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 10, seed=5, size=40)]
    inc = backbones["inception"]
    real = inc._forward
    left = {}
    for workers in (0, 2):
        calls = {"n": 0}

        def failing(batch, _real=real, _calls=calls):
            _calls["n"] += 1
            if _calls["n"] == 3:  # the third batch of images (4 + 4 + 2)
                raise RuntimeError("forward failed")
            return _real(batch)

        monkeypatch.setattr(inc, "_forward", failing)
        bank = FeatureBank(backbones, tmp_path / f"c{workers}", batch_size=4, num_workers=workers)
        with pytest.raises(RuntimeError, match="forward failed"):
            bank.images(paths, NEEDS)
        left[workers] = cached_keys(tmp_path / f"c{workers}")
        monkeypatch.setattr(inc, "_forward", real)
    assert left[2] == left[0]
    # per batch clip runs, then inception, then the detector: the third batch's inception forward fails after
    # clip's, so clip's 10 rows are on disk, inception's and the detector's 8
    assert sorted(len(v) for v in left[0].values()) == [8, 8, 10]


def test_crop_plan_from_fresh_detections_equals_the_cached_one(backbones, tmp_path) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 6, seed=6, size=40)]
    first = FeatureBank(backbones, tmp_path / "c", batch_size=4, num_workers=2).images(paths, NEEDS, crops=CROPS)
    assert len(first.features["crops.owner"]) > 0
    for d in (tmp_path / "c" / "features").iterdir():  # crops gone; the detections stay cached
        if d.name.startswith("crops-"):
            shutil.rmtree(d)
    det = backbones["detector"]
    n0 = det.n_forward_images
    again = FeatureBank(backbones, tmp_path / "c", batch_size=4, num_workers=2).images(paths, NEEDS, crops=CROPS)
    assert det.n_forward_images == n0  # the plan was read from the cache
    assert sorted(again.features) == sorted(first.features)
    for k, v in first.features.items():
        np.testing.assert_array_equal(again.features[k], v, err_msg=k)
