"""The pieces torchrun runs rely on, without processes: sharding, and a store seeing other writers' shards."""

from __future__ import annotations

import numpy as np

from tise_bench.distributed import Dist, init_from_env, rank_device
from tise_bench.features.store import FeatureStore


def test_shards_cover_every_item_once():
    items = [f"p{i}" for i in range(11)]
    parts = [Dist(rank=r, world_size=3).shard(items) for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert [len(p) for p in parts] == [4, 4, 3]


def test_no_world_size_means_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = init_from_env("cpu")
    assert not d.enabled and d.is_main and d.shard([1, 2]) == [1, 2]
    d.barrier()  # a no-op


def test_rank_device_pins_each_rank_to_its_gpu_only_when_unpinned():
    d = Dist(rank=1, world_size=2, local_rank=1)
    assert rank_device("cuda", d) == "cuda:1"
    assert rank_device("cuda:0", d) == "cuda:0"
    assert rank_device("cpu", d) == "cpu"
    assert rank_device("cuda", Dist()) == "cuda"


def test_store_refresh_sees_shards_written_by_another_process(tmp_path):
    mine, theirs = FeatureStore(tmp_path, "ns"), FeatureStore(tmp_path, "ns")
    theirs.put(["k1", "k2"], {"f": np.arange(4, dtype=np.float32).reshape(2, 2)})
    assert "k1" not in mine  # indexed at construction
    mine.refresh()
    assert "k1" in mine and "k2" in mine
    np.testing.assert_array_equal(mine.get(["k2"], ("f",))["f"], [[2, 3]])
    mine.put(["k3"], {"f": np.ones((1, 2), np.float32)})
    mine.refresh()  # its own shard is not read again
    assert sorted(mine._index) == ["k1", "k2", "k3"]
