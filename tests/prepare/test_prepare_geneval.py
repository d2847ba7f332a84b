"""python -m tise_bench.prepare data=geneval: GenEval's evaluation_metadata.jsonl imported, or regenerated exactly as
djghosh13/geneval prompts/create_prompts.py does (seed 43 = the published file, pinned by its sha256)."""

from __future__ import annotations

import collections
import hashlib
import json

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from tise_bench.data.manifest import load_manifest
from tise_bench.errors import DataError
from tise_bench.prepare import run_prepare
from tise_bench.prepare.geneval import generate_suite, make_plural, prepare_geneval, with_article

#: sha256 of djghosh13/geneval prompts/evaluation_metadata.jsonl (553 lines, json.dumps of each record)
PUBLISHED_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
#: lines of that file, copied as published (first of each task, and the last line)
PUBLISHED = [
    '{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}',
    '{"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "sports ball", "count": 1}], '
    '"prompt": "a photo of a bench and a sports ball"}',
    '{"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}], '
    '"prompt": "a photo of two clocks"}',
    '{"tag": "colors", "include": [{"class": "fire hydrant", "count": 1, "color": "blue"}], '
    '"prompt": "a photo of a blue fire hydrant"}',
    '{"tag": "position", "include": [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 1, '
    '"position": ["right of", 0]}], "prompt": "a photo of a dog right of a teddy bear"}',
    '{"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"}, {"class": "apple", '
    '"count": 1, "color": "black"}], "prompt": "a photo of a purple wine glass and a black apple"}',
    '{"tag": "color_attr", "include": [{"class": "pizza", "count": 1, "color": "blue"}, {"class": "baseball glove", '
    '"count": 1, "color": "yellow"}], "prompt": "a photo of a blue pizza and a yellow baseball glove"}',
]


def test_generator_reproduces_genevals_published_prompts() -> None:
    suite = generate_suite(43, 100)
    text = "".join(json.dumps(s) + "\n" for s in suite)
    assert hashlib.sha256(text.encode()).hexdigest() == PUBLISHED_SHA256
    assert len(suite) == 553
    assert collections.Counter(s["tag"] for s in suite) == {
        "single_object": 80,
        "two_object": 99,
        "counting": 80,
        "colors": 94,
        "position": 100,
        "color_attr": 100,
    }
    lines = text.splitlines()
    firsts = {}
    for line in lines:
        firsts.setdefault(json.loads(line)["tag"], line)
    assert list(firsts.values()) + [lines[-1]] == PUBLISHED
    assert not any("person" in q["class"] for s in suite if s["tag"] in ("colors", "color_attr") for q in s["include"])


def test_templates() -> None:
    assert (with_article("apple"), with_article("dog"), make_plural("bus"), make_plural("dog")) == (
        "an apple",
        "a dog",
        "buses",
        "dogs",
    )


def test_metadata_file_is_imported_in_order_with_geneval_ids(tmp_path) -> None:
    meta = tmp_path / "evaluation_metadata.jsonl"
    meta.write_text("\n".join(PUBLISHED[:6]) + "\n")
    paths = prepare_geneval(tmp_path / "out", metadata=meta)
    recs = load_manifest(paths["geneval"])
    assert [r.id for r in recs] == ["00000", "00001", "00002", "00003", "00004", "00005"]
    want = [json.loads(x) for x in PUBLISHED[:6]]
    assert [r.caption for r in recs] == [w["prompt"] for w in want]
    for r, w in zip(recs, want):
        assert r.extra == {k: w[k] for k in ("tag", "include", "exclude") if k in w}


def test_bad_metadata_names_file_and_line(tmp_path) -> None:
    meta = tmp_path / "m.jsonl"
    meta.write_text(
        PUBLISHED[0]
        + "\n"
        + '{"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "teal"}], "prompt": "x"}\n'
    )
    with pytest.raises(DataError, match=r"m\.jsonl:2: .*'color'"):
        prepare_geneval(tmp_path / "o", metadata=meta)
    with pytest.raises(DataError, match="no such file"):
        prepare_geneval(tmp_path / "o", metadata=tmp_path / "missing.jsonl")


def test_prepare_config_then_the_eval_set_config(tmp_path) -> None:
    with initialize_config_module(version_base="1.3", config_module="tise_bench.prepare.conf"):
        cfg = compose(
            "prepare", overrides=["data=geneval", f"out={tmp_path / 'data' / 'geneval'}", "geneval_per_task=3"]
        )
    paths = run_prepare(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    recs = load_manifest(paths["geneval"])
    assert [r.caption for r in recs] == [s["prompt"] for s in generate_suite(43, 3)]
    again = prepare_geneval(tmp_path / "again", n=3)
    assert again["geneval"].read_bytes() == paths["geneval"].read_bytes()  # byte-deterministic
    from tise_bench.evalset import load_eval_set

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        main = compose("config", overrides=["data=geneval", f"paths.data_root={tmp_path / 'data'}"])
    assert str(main.data.subsets.geneval) == str(paths["geneval"])
    assert list(main.metrics.ids)[0] == "geneval"
    es = load_eval_set(OmegaConf.to_container(main.data, resolve=True), tmp_path / "cache")  # type: ignore[arg-type]
    assert set(es.subsets) == {"geneval"} and len(es.subsets["geneval"]) == len(recs)
