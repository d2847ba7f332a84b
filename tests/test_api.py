"""tise_bench.evaluate over in-memory images and over a folder gives the same result object and values."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.config_schema import compose
from tise_bench.results import EvalResult
from tise_bench.runner import resolve_config

CFG = {**RANDOM_BACKBONES, "detector": {"arch": "yolov8n.yaml", "imgsz": 160, "max_crops": 4}}


def test_in_memory_and_folder_agree(tmp_path, fresh_cache):
    paths = structured_images(tmp_path / "imgs", 6, seed=21, size=32)
    caps = [f"a scene with shapes number {i}" for i in range(6)]
    pil = [Image.open(p).convert("RGB") for p in paths]
    mixed = [
        pil[0],
        np.asarray(pil[1]),
        torch.from_numpy(np.asarray(pil[2])).permute(2, 0, 1).float() / 255.0,
        *pil[3:],
    ]
    # ids whose sorted order is not the records' order: the folder scan orders image rows by id, and O-IS reads its
    # object crops in row order (its splits), so the in-memory path must order them the same way
    ids = ["0003", "0000", "0004", "0001", "0005", "0002"]
    o_is = {"o_is": {"splits": 3}}  # a few crops: 3 splits, which crops share one depends on their order
    mem = tise_bench.evaluate(mixed, caps, ids=ids, params=o_is, backbones=CFG, cache_dir=fresh_cache)
    assert isinstance(mem, EvalResult)
    assert {"clip_score", "clip_rp", "is", "is_star", "o_is"} <= set(mem.metrics)
    na = mem.provenance["not_applicable"]
    assert {"fid", "clip_i2i", "o_fid", "soa_c", "ca", "pa"} <= set(na) and "reference" in na["fid"]
    assert np.isfinite(mem.metrics["clip_score"].value) and mem.metrics["clip_score"].n == 6

    (tmp_path / "named").mkdir()
    for p, rid in zip(paths, ids):
        (tmp_path / "named" / f"{rid}.png").write_bytes(p.read_bytes())
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps({"id": rid, "caption": c}) + "\n" for rid, c in zip(ids, caps)))
    folder = tise_bench.evaluate(
        tmp_path / "named",
        manifest=man,
        metrics=["clip_score", "is", "o_is"],
        params=o_is,
        backbones=CFG,
        cache_dir=fresh_cache,
        write_to=tmp_path / "written",
    )
    assert folder.metrics["clip_score"].value == mem.metrics["clip_score"].value
    assert folder.metrics["is"].value == mem.metrics["is"].value
    assert np.isfinite(mem.metrics["o_is"].value) and mem.metrics["o_is"].n > 6  # crops, not images
    assert folder.metrics["o_is"].value == mem.metrics["o_is"].value
    # bootstrap replicates: a written run gets the CLI's (the leaderboard reads them), an in-memory one none
    assert mem.replicates == {} and mem.provenance["bootstrap"]["replicates"] == 0
    assert folder.replicates["clip_score"].shape == (1000,) and folder.replicates["is"].shape == (200,)
    assert (tmp_path / "written" / "bootstrap.npz").is_file()
    out = mem.write(tmp_path / "res")
    saved = json.loads(out.read_text())
    assert saved["random_weights"] is True and saved["metrics"]["clip_score"]["direction"] == "higher"
    # the full config the CLI would compose for these arguments (model=folder, data=custom, the backbones dict)
    cfg = saved["config"]
    assert cfg["model"]["name"] == "model" and cfg["data"]["name"] == "custom" and cfg["on_unsupported"] == "skip"
    assert cfg["backbones"]["detector"]["imgsz"] == 160 and cfg["backbones"]["detector"]["iou"] == 0.5
    assert cfg["backbones"]["object_classifier"] is None and cfg["bootstrap"]["seed"] == 0
    assert cfg["metrics"]["crops"]["threshold"] == 0.5
    assert cfg["metrics"]["ids"] == resolve_config(compose())["metrics"]["ids"]  # the CLI's default ids


def test_one_manifest_serves_every_metric_subset(tmp_path, fresh_cache):
    """``manifest=`` / ``data.manifest``: one file serves every subset a metric reads, the added protocols' too
    (geneval, spatial, numeracy: once only TISE's five, and a CompBench id then failed with "0 prompt ids")."""
    import pytest

    from tise_bench.errors import ConfigError
    from tise_bench.evalset import load_eval_set

    paths = structured_images(tmp_path / "imgs", 3, seed=5, size=32)
    man = tmp_path / "m.jsonl"
    man.write_text(
        "".join(
            json.dumps(
                {
                    "id": p.stem,
                    "caption": f"{n} kites",
                    "compbench": {"task": "numeracy", "objects": ["kite"], "numbers": [n]},
                }
            )
            + "\n"
            for n, p in zip((1, 2, 3), paths)
        )
    )
    es = load_eval_set({"name": "c", "manifest": str(man)}, fresh_cache)
    assert {"realism", "geneval", "spatial", "numeracy"} <= set(es.subsets)
    assert [r.id for r in es.subsets["numeracy"]] == [p.stem for p in paths]
    res = tise_bench.evaluate(
        tmp_path / "imgs", manifest=man, metrics=["compbench_numeracy"], backbones=CFG, cache_dir=fresh_cache
    )
    assert res.metrics["compbench_numeracy"].n == 3 and 0.0 <= res.metrics["compbench_numeracy"].value <= 1.0
    with pytest.raises(ConfigError, match=r"none of the selected metrics can run .*clip_score: .*'nosuch' subset"):
        tise_bench.evaluate(
            tmp_path / "imgs",
            manifest=man,
            metrics=["clip_score"],
            params={"clip_score": {"subset": "nosuch"}},
            backbones=CFG,
            cache_dir=fresh_cache,
        )
