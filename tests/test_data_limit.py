"""``data.limit=N`` (issue 14, item 5): a quick run on the first N prompts of each subset (file order), applied
when the eval set is loaded; the result says so (``eval_set.limit``, the config, a log line) and the images of
the prompts left out are expected in the folder, not mismatches.

One tiny custom run (8 prompts of 32 px images, each with a reference, random CPU backbones, FID only).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from helpers import cache_with_session_weights, custom_run_config, structured_images
from tise_bench.data.manifest import Record
from tise_bench.data.samples import find_images_layout
from tise_bench.errors import ConfigError, DataError
from tise_bench.evalset import load_eval_set
from tise_bench.runner import run

N_PROMPTS, LIMIT = 8, 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("limit")
    cache_with_session_weights(session_cache, root / "cache")
    structured_images(root / "gen", N_PROMPTS, seed=1511, size=32)
    refs = structured_images(root / "ref", N_PROMPTS, seed=1512, size=32)
    recs = [{"id": f"{i:04d}", "caption": f"scene {i}", "reference": str(refs[i])} for i in range(N_PROMPTS)]
    (root / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (root / "first.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:LIMIT]))
    return root


def _cfg(root: Path, manifest: str, *extra: str):
    return custom_run_config(root, root / manifest, "metrics.ids=[fid]", *extra)


@pytest.fixture(scope="module")
def limited(tiny):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tise_bench")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        (result,) = run(_cfg(tiny, "all.jsonl", f"data.limit={LIMIT}"))  # on_mismatch=fail (the default)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    doc = json.loads((tiny / "res" / "tiny" / "m" / "metrics.json").read_text())
    return result, doc, [r.getMessage() for r in records]


def test_limit_keeps_the_first_n_prompts_in_file_order(limited):
    result, doc, _ = limited
    assert list(result.samples["id"]) == [f"{i:04d}" for i in range(LIMIT)]
    fid = doc["metrics"]["fid"]
    assert fid["n"] == LIMIT
    assert fid["n_reference"] == LIMIT  # the reference side follows the kept records


def test_limit_is_marked_in_the_result(limited):
    _, doc, messages = limited
    assert doc["eval_set"]["limit"] == LIMIT
    assert doc["config"]["data"]["limit"] == LIMIT
    assert f"data.limit={LIMIT}: scoring the first {LIMIT} of {N_PROMPTS} prompts per subset" in messages


def test_images_beyond_the_limit_are_not_mismatches(limited):
    _, doc, _ = limited
    assert doc["mismatch"] == {"missing": [], "extra": [], "duplicate": []}
    assert doc["counts"]["extra"] == 0


def test_limit_scores_what_a_manifest_of_the_first_n_scores(tiny, limited):
    _, doc, _ = limited
    (plain,) = run(_cfg(tiny, "first.jsonl", "on_mismatch=skip", "model.name=first"))
    assert plain.metrics["fid"].value == pytest.approx(doc["metrics"]["fid"]["value"], rel=1e-9)
    assert plain.provenance["counts"]["extra"] == N_PROMPTS - LIMIT  # without the limit they are extras
    full = json.loads((tiny / "res" / "tiny" / "m" / "metrics.json").read_text())
    assert "limit" not in plain.provenance["eval_set"]
    assert full["eval_set"]["limit"] == LIMIT


@pytest.mark.parametrize("bad", [0, -3, True, "5"])
def test_limit_below_one_is_refused_naming_the_key(tiny, bad):
    with pytest.raises(ConfigError, match=r"data\.limit"):
        load_eval_set({"name": "tiny", "manifest": str(tiny / "all.jsonl"), "limit": bad}, tiny / "cache")


def test_limit_from_the_command_line_is_refused_before_any_work(tiny):
    with pytest.raises(ConfigError, match=r"data\.limit=0 is not valid"):
        run(_cfg(tiny, "all.jsonl", "data.limit=0", "model.name=zero"))
    assert not (tiny / "res" / "tiny" / "zero").exists()


def test_limit_larger_than_the_subset_keeps_everything(tiny):
    es = load_eval_set({"name": "tiny", "manifest": str(tiny / "all.jsonl"), "limit": 100}, tiny / "cache")
    assert [r.id for r in es.subsets["realism"]] == [f"{i:04d}" for i in range(N_PROMPTS)]
    assert es.limit == 100 and es.beyond_limit["realism"] == []


def test_layout_matching_ignores_left_out_records_only(tmp_path):
    for name in ("a.png", "b.png", "b_1.png", "c.png", "stray.png"):
        (tmp_path / name).write_bytes(b"x")
    kept, left = [Record(id="a", caption="x")], [Record(id="b", caption="y"), Record(id="c", caption="z")]
    by_subset, report = find_images_layout(tmp_path, {"rp": kept}, policy="skip", beyond={"rp": left})
    assert by_subset == {"rp": {"a": [(0, str(tmp_path / "a.png"))]}}
    assert [Path(p).name for p in report.extra] == ["stray.png"]  # a file of no record is still an extra
    (tmp_path / "stray.png").unlink()
    find_images_layout(tmp_path, {"rp": kept}, beyond={"rp": left})  # policy=fail: nothing to report
    with pytest.raises(DataError, match=r"1 extra \(c\.png\)"):
        find_images_layout(tmp_path, {"rp": [*kept, left[0]]})  # without beyond, c.png is an extra
