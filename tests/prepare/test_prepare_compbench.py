"""``python -m tise_bench.prepare data=compbench``: T2I-CompBench's prompt files -> spatial / numeracy manifests."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from tise_bench.data.manifest import load_manifest
from tise_bench.errors import ConfigError, DataError
from tise_bench.evalset import load_eval_set
from tise_bench.prepare import prepare_compbench, run_prepare

# as released: CRLF line ends, lowercase prompts (examples/dataset/spatial_val.txt, numeracy_val.txt)
SPATIAL = (
    "a giraffe next to a lamp\r\na dog on the left of a cat\r\nan apple near a man\r\n\r\na red dog beside a cat\r\n"
)
NUMERACY = "two boys\r\nthree couches, one man and two dogs\r\nfour ducks quacked by the pond\r\na dogs\r\n"


def _compbench(root, split="val"):
    d = root / "examples" / "dataset"
    d.mkdir(parents=True)
    suffix = "" if split == "all" else f"_{split}"
    (d / f"spatial{suffix}.txt").write_bytes(SPATIAL.encode())
    (d / f"numeracy{suffix}.txt").write_bytes(NUMERACY.encode())
    return root


def test_prompt_files_become_records_with_compbench_fields(tmp_path):
    log: list[str] = []
    paths = prepare_compbench(_compbench(tmp_path / "cb"), tmp_path / "out", log=log.append)
    assert {k: p.name for k, p in paths.items()} == {"spatial": "spatial.jsonl", "numeracy": "numeracy.jsonl"}
    sp = load_manifest(paths["spatial"])
    assert [r.id for r in sp] == ["spatial-0000", "spatial-0001", "spatial-0002", "spatial-0003"]  # blank skipped
    assert [r.caption for r in sp][:2] == ["a giraffe next to a lamp", "a dog on the left of a cat"]  # no \r
    assert sp[0].extra["compbench"] == {
        "task": "spatial",
        "object_a": "giraffe",
        "relation": "next to",
        "object_b": "lamp",
    }
    assert sp[2].extra["compbench"]["object_b"] == "man" and sp[2].extra["compbench"]["relation"] == "near"
    assert "compbench" not in sp[3].extra  # outside CompBench's template: written, counted
    nu = load_manifest(paths["numeracy"])
    assert [r.extra.get("compbench") for r in nu] == [
        {"task": "numeracy", "objects": ["boy"], "numbers": [2]},
        {"task": "numeracy", "objects": ["couch", "man", "dog"], "numbers": [3, 1, 2]},
        {"task": "numeracy", "objects": ["duck"], "numbers": [4]},
        None,  # "a dogs": the reference loses the number
    ]
    text = "\n".join(log)
    assert "spatial" in text and "4 records" in text and "not parsed by CompBench's rules" in text
    # giraffe, lamp: outside COCO-80 (giraffe is COCO, lamp is not); duck: not COCO
    assert "spatial: 1 of 4 prompts name a noun outside COCO-80" in text
    assert "numeracy: 1 of 4 prompts name a noun outside COCO-80" in text
    again = tmp_path / "again"
    prepare_compbench(_compbench(tmp_path / "cb2"), again, log=None)
    assert (again / "spatial.jsonl").read_bytes() == paths["spatial"].read_bytes()  # deterministic


def test_split_all_and_flat_folder(tmp_path):
    root = _compbench(tmp_path / "cb", split="all")
    paths = prepare_compbench(root / "examples" / "dataset", tmp_path / "out", split="all", log=None)
    assert len(load_manifest(paths["numeracy"])) == 4


def test_errors_name_the_file_the_places_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"'spatial_val.txt' not found; looked in: .*examples/dataset.*compbench_root"):
        prepare_compbench(tmp_path, tmp_path / "out", log=None)
    with pytest.raises(ConfigError, match="compbench_split='test'.*val, train, all"):
        prepare_compbench(tmp_path, tmp_path / "out", split="test", log=None)
    with pytest.raises(ConfigError, match="compbench_root=<dir>"):
        run_prepare({"data": "compbench", "out": str(tmp_path / "o")})


def test_prepare_config_then_the_eval_set_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TISE_DATA_ROOT", str(tmp_path / "data"))
    root = _compbench(tmp_path / "cb")
    with initialize_config_module(version_base="1.3", config_module="tise_bench.prepare.conf"):
        cfg = compose("prepare", overrides=["data=compbench", f"compbench_root={root}"])
    paths = run_prepare(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    assert paths["spatial"] == tmp_path / "data" / "compbench" / "spatial.jsonl"
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        main = compose("config", overrides=["data=compbench", f"paths.data_root={tmp_path / 'data'}"])
    assert list(main.metrics.ids) == ["compbench_spatial", "compbench_numeracy"]
    es = load_eval_set(OmegaConf.to_container(main.data, resolve=True), tmp_path / "cache")  # type: ignore[arg-type]
    assert set(es.subsets) == {"spatial", "numeracy"} and len(es.subsets["spatial"]) == 4
