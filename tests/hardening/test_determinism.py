"""The same inputs give the same numbers whatever the batch size, the repeat or the folder listing order."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.data import samples as samples_mod

METRICS = ["clip_score", "clip_rp", "is", "fid", "clip_i2i"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    # 8 prompts: batch size 5 still splits each side into a full and a partial batch; CLIP-RP's 5 distractors and
    # IS's 2 splits still fit
    structured_images(root / "gen", 8, seed=5, size=32)
    structured_images(root / "refs", 8, seed=6, size=32)
    man = root / "m.jsonl"
    man.write_text(
        "".join(
            json.dumps({"id": f"{i:04d}", "caption": f"a picture with shapes {i}", "reference": f"refs/{i:04d}.png"})
            + "\n"
            for i in range(8)
        )
    )
    return root, man


def _run(data, cache, batch_size: int):
    root, man = data
    return tise_bench.evaluate(
        root / "gen",
        manifest=man,
        metrics=METRICS,
        backbones=RANDOM_BACKBONES,
        cache_dir=cache,
        batch_size=batch_size,
        params={"clip_rp": {"n_distractors": 5, "splits": 2}, "is": {"splits": 2}},
    )


def test_batch_sizes_give_the_same_values(data, session_cache, tmp_path):
    runs = {}
    for bs in (1, 5, 32):  # each on its own empty cache: features really are recomputed per batch size
        cache = tmp_path / f"cache{bs}"
        for sub in ("weights", "weights-hashes"):
            if (session_cache / sub).is_dir():
                import shutil

                shutil.copytree(session_cache / sub, cache / sub)
        res = _run(data, cache, bs)
        assert sum(res.provenance["backbone_forwards"].values()) > 0
        runs[bs] = res
    base = runs[32]
    for bs, res in runs.items():
        for mid in ("is", "fid"):  # the bar: 1e-6 relative
            assert res.metrics[mid].value == pytest.approx(base.metrics[mid].value, rel=1e-6), (bs, mid)
        assert res.metrics["clip_rp"].value == base.metrics["clip_rp"].value
        # cosines: batched matmuls differ in the last float32 bits (random-weight cosines are ~0, so relative
        # error is meaningless there); 1e-6 absolute on a 0..2.5 scale
        for mid in ("clip_score", "clip_i2i"):
            assert res.metrics[mid].value == pytest.approx(base.metrics[mid].value, abs=1e-6), (bs, mid)
            np.testing.assert_allclose(res.samples[mid].to_numpy(), base.samples[mid].to_numpy(), rtol=0, atol=1e-6)


def test_repeat_and_listing_order_give_identical_values(data, fresh_cache, monkeypatch):
    first = _run(data, fresh_cache, 4)
    again = _run(data, fresh_cache, 4)
    assert set(again.provenance["backbone_forwards"].values()) == {0}
    real_listdir = os.listdir
    monkeypatch.setattr(samples_mod.os, "listdir", lambda d: list(reversed(real_listdir(d))))
    shuffled = _run(data, fresh_cache, 4)
    for res in (again, shuffled):
        assert res.values() == first.values()
        assert res.samples.drop(columns=["file"]).equals(first.samples.drop(columns=["file"]))
