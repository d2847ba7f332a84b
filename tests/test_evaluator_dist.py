"""tise_bench.Evaluator under torch.distributed (issue 14 item 2): two gloo processes, each updating half of the
samples, both return the result of one process on all of them; ids given on two ranks are refused."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch.multiprocessing as mp
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images, tiny_clip_model

METRICS = ["clip_score", "clip_rp", "clip_i2i"]  # CLIP only: generated, reference and text rows all gathered
N = 6


def _backbones() -> dict:
    """Random CPU backbones with a tiny CLIP (quick to build in each spawned process)."""
    return {**RANDOM_BACKBONES, "clip": {"model": tiny_clip_model()}}


def _worker(rank: int, world: int, init: str, root: str, cache: str) -> None:
    import torch.distributed as td

    from tise_bench.errors import ConfigError

    td.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        data = json.loads(open(f"{root}/data.json").read())
        pix = np.load(f"{root}/pix.npy")
        refs = np.load(f"{root}/refs.npy")
        half = slice(rank * N // world, (rank + 1) * N // world)
        ev = tise_bench.Evaluator(METRICS, backbones=_backbones(), cache_dir=cache, num_workers=0)
        ev.update(pix[half], data["caps"][half], references=list(refs[half]), ids=data["ids"][half])
        res = ev.compute()
        assert len(ev) == len(range(N)[half])  # the local state is kept after the gather
        out = {
            "values": res.values(),
            "n": {k: v.n for k, v in res.metrics.items()},
            "ids": list(res.samples["id"]),
            "world_size": res.provenance["world_size"],
            "forwards": res.provenance["backbone_forwards"]["clip"],
        }
        ev.reset()
        ev.update(pix[:1], data["caps"][:1], ids=["same-id"])  # on both ranks
        try:
            ev.compute()
        except ConfigError as e:
            out["duplicate"] = str(e)
        with open(f"{root}/rank{rank}.pkl", "wb") as f:
            pickle.dump(out, f)
    finally:
        td.barrier()  # no rank tears the group down while the other still talks to it (gloo aborts then)
        td.destroy_process_group()
    # Passed (its result is on disk): leave without the interpreter's finalisation. Once in ~50 loaded CI runs a rank
    # died there by SIGABRT ("terminate called without an active exception": a C++ thread object destroyed while
    # joinable, torch's teardown, not ours; 15 of 15 runs on 2 saturated cores did not reproduce it). A failure above
    # still raises, and mp.spawn reports it.
    os._exit(0)


def test_two_ranks_gather_to_the_single_process_result(tmp_path):
    cache = tmp_path / "cache"
    gen = structured_images(tmp_path / "gen", N, seed=41, size=32)
    ref = structured_images(tmp_path / "ref", N, seed=42, size=32)
    pix = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in gen])
    refs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in ref])
    caps = [f"shapes and colours, picture {i}" for i in range(N)]
    ids = [f"s{i:02d}" for i in range(N)]
    np.save(tmp_path / "pix.npy", pix)
    np.save(tmp_path / "refs.npy", refs)
    (tmp_path / "data.json").write_text(json.dumps({"caps": caps, "ids": ids}))

    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path), str(cache)), nprocs=2, join=True)

    single = tise_bench.Evaluator(METRICS, backbones=_backbones(), cache_dir=cache, num_workers=0)
    for half in (slice(0, N // 2), slice(N // 2, N)):  # the ranks' batches: the same forwards, the same round-off
        single.update(pix[half], caps[half], references=list(refs[half]), ids=ids[half])
    want = single.compute()
    assert want.provenance["world_size"] == 1 and set(want.metrics) == set(METRICS)
    for rank in range(2):
        got = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        # the same images in the same batches, but another process may split the matmuls over another number of
        # threads (last bits of a float32 feature; CI saw 4e-9 relative on CLIP-I2I): equal to round-off, while a
        # lost, doubled or misordered sample moves these values by orders of magnitude more
        want_values = want.values()
        assert set(got["values"]) == set(want_values), rank
        for k, v in want_values.items():
            assert got["values"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), (rank, k)
        assert got["n"] == {k: v.n for k, v in want.metrics.items()} == {m: N for m in METRICS}
        assert got["ids"] == list(want.samples["id"]) and got["world_size"] == 2
        assert got["forwards"] == want.provenance["backbone_forwards"]["clip"] == 2 * N  # every rank's, summed
        assert "ids were given on several ranks (first: 'same-id' on ranks [0, 1])" in got["duplicate"]
