"""Honest small-N (issue 14, item 4): each metric declares the sample size below which its value is not
comparable to published numbers; a run says so in metrics.json (``warnings``) and marks the CLI table; records
without a ``reference`` are counted (``skipped.no_reference``) and warned about, never silently dropped.

One tiny custom run (12 prompts of 32 px images, 8 with a reference, random CPU backbones) serves the run tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import cache_with_session_weights, custom_run_config, structured_images
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.registry import MinComparable, all_metrics, extra_count, n_count
from tise_bench.report import SMALL_N_MARK, format_table
from tise_bench.results import EvalResult, value_warnings
from tise_bench.runner import run
from tise_bench.types import MetricValue

N_PROMPTS, N_REFS = 12, 8


# ------------------------------------------------------------------------------------------- declared thresholds
def _rules(metric_id: str) -> dict[str, int]:
    return {r.what: r.threshold for r in all_metrics()[metric_id].min_comparable}


def test_thresholds_are_the_published_protocols():
    # RP: TISE / Park et al. rank the true caption against 99 distractors
    assert _rules("clip_rp") == {"candidates per image": 100}
    # IS / IS*: TISE's CUB split, 29,330 images (2,933 test images x 10 captions) in 10 splits
    assert _rules("is") == _rules("is_star") == {"images per split": 2933}
    assert _rules("o_is") == {"crops per split": 2933}
    # FID: Heusel et al.'s TTUR README, at least 10,000 samples; O-FID the same estimator on crops
    assert _rules("fid") == {"generated images": 10000, "reference images": 10000}
    assert _rules("o_fid") == {"generated crops": 10000, "reference crops": 10000}
    # KID: torch-fidelity's kid_subset_size
    assert _rules("kid") == {"generated images": 1000, "reference images": 1000}
    # precision / recall / density / coverage: Naeem et al. 2020, 10,000 real and 10,000 generated
    for mid in ("precision", "recall", "density", "coverage"):
        assert _rules(mid) == {"generated images": 10000, "reference images": 10000}, mid
    # SOA-C / SOA-I: Hinz et al.'s smallest class (label_78_hairdrier.pkl, 35 captions) x 3 images per caption;
    # all 80 COCO label files (both reference scripts warn on fewer)
    assert _rules("soa_c") == _rules("soa_i") == {"images in the smallest class": 105, "classes": 80}


def test_readme_states_every_threshold():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    para = readme[readme.index("Small eval sets:") :].split("\n\n")[0]
    for spec in all_metrics().values():
        for rule in spec.min_comparable:
            assert f"{rule.threshold:,}" in para or str(rule.threshold) in para, (spec.id, rule.threshold)


def test_rule_checks_the_count_against_the_threshold():
    rule = MinComparable("generated images", 10000, n_count, "src")
    w = rule.check(MetricValue(value=12.5, n=9999), "FID")
    assert w is not None and (w["kind"], w["used"], w["threshold"]) == ("small_n", 9999, 10000)
    assert "FID: 9999 generated images < 10000" in w["message"]
    assert rule.check(MetricValue(value=12.5, n=10000), "FID") is None  # at the threshold: comparable
    assert rule.check(MetricValue(value=math.nan, n=3), "FID") is None  # no value, nothing to compare
    unknown = MinComparable("reference images", 10000, extra_count("n_reference"), "src")
    assert unknown.check(MetricValue(value=1.0, n=3), "FID") is None  # reference_stats: count not known


def test_is_split_size_is_images_over_splits():
    spec = all_metrics()["is"]
    (w,) = spec.small_n(MetricValue(value=1.1, n=50, extras={"splits": 10}))
    assert (w["what"], w["used"], w["threshold"]) == ("images per split", 5, 2933)
    assert spec.small_n(MetricValue(value=1.1, n=29330, extras={"splits": 10})) == []  # TISE's CUB run
    o_is = all_metrics()["o_is"]
    (w,) = o_is.small_n(MetricValue(value=1.1, n=105, extras={"splits": 10, "n_crops_used": 100}))
    assert w["used"] == 10  # TISE's O-IS loop uses splits * (n // splits) crops


def _soa_ctx(per_class: dict[str, int], found: int = 1):
    """SOA records of ``per_class[c]`` images of class c (id 0, 1, ...), the first ``found`` of each with a box of
    their class, the others with no detection at all."""
    names = list(per_class)
    recs, dets = [], []
    for cid, (c, k) in enumerate(per_class.items()):
        for j in range(k):
            recs.append(Record(f"{c}_{j}", f"a {c}", category=c))
            d = np.full((2, 6), -1.0, dtype=np.float32)
            if j < found:
                d[0] = [0, 0, 5, 5, 0.9, cid]
            dets.append(d)
    return MetricContext(
        subset="soa",
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(len(recs))],
        gen_features={"detector.detections": np.stack(dets)},
        extra={"class_names": dict(enumerate(names))},
    )


def test_soa_warns_on_its_smallest_class_and_missing_classes():
    for mid in ("soa_c", "soa_i"):
        spec = all_metrics()[mid]
        at = MetricValue(value=50.0, n=9000, extras={"min_images_per_class": 105, "n_classes_generated": 80})
        assert spec.small_n(at) == []  # the published protocol's size: comparable
        (w,) = spec.small_n(MetricValue(value=50.0, n=9000, extras={**at.extras, "min_images_per_class": 104}))
        assert (w["what"], w["used"], w["threshold"]) == ("images in the smallest class", 104, 105), mid
        # the counts each metric records: images of its smallest class, classes with images
        mv = spec.compute(_soa_ctx({"c00": 3, "c01": 5}), {})
        assert (mv.extras["min_images_per_class"], mv.extras["n_classes_generated"]) == (3, 2), mid
        few = {w["what"]: (w["used"], w["threshold"]) for w in spec.small_n(mv)}
        assert few == {"images in the smallest class": (3, 105), "classes": (2, 80)}, mid
    # empty_images=drop (TISE's code) leaves images without detections out of the score, not out of the count:
    # the protocol fixes the images generated
    drop = all_metrics()["soa_c"].compute(_soa_ctx({"c00": 3, "c01": 5}, found=1), {"empty_images": "drop"})
    assert drop.skipped == {"no_detection_dropped": 2 + 4} and drop.n == 2
    assert drop.extras["min_images_per_class"] == 3


def _result(warn_ids: dict[str, list[dict]]) -> EvalResult:
    import pandas as pd

    metrics = {m: MetricValue(value=1.0, n=12) for m in ("clip_rp", "fid")}
    meta = {m: {"display": {"clip_rp": "RP", "fid": "FID"}[m], "higher_is_better": m == "clip_rp"} for m in metrics}
    for m, ws in warn_ids.items():
        meta[m]["warnings"] = ws
    return EvalResult(model="m", data="d", metrics=metrics, meta=meta, samples=pd.DataFrame(), provenance={})


def test_table_marks_only_warned_values():
    rp = all_metrics()["clip_rp"].small_n(MetricValue(value=1.0, n=12, extras={"n_candidates": 7}))
    text = format_table([_result({"clip_rp": rp})])
    row = text.splitlines()[3]
    assert f"1{SMALL_N_MARK}" in row and row.count(SMALL_N_MARK) == 1  # RP marked, FID not
    assert f"{SMALL_N_MARK} too few samples" in text and "RP 7 candidates per image < 100" in text
    assert SMALL_N_MARK not in format_table([_result({})])  # no warning: no mark, no legend


def test_small_n_legend_gives_each_metric_once_with_the_models_range():
    """Several models: one legend entry per metric and count kind, the models' counts as a range."""
    spec = all_metrics()["clip_rp"]
    runs = [
        _result({"clip_rp": spec.small_n(MetricValue(value=1.0, n=12, extras={"n_candidates": k}))}) for k in (9, 7, 9)
    ]
    legend = [ln for ln in format_table(runs).splitlines() if ln.startswith(f"{SMALL_N_MARK} too few samples")]
    assert len(legend) == 1 and legend[0].count("RP ") == 1 and "RP 7–9 candidates per image < 100" in legend[0]


def test_value_warnings_name_missing_references():
    spec = all_metrics()["fid"]
    mv = MetricValue(value=3.0, n=20000, extras={"n_reference": 15000}, skipped={"no_reference": 5})
    (w,) = value_warnings(spec, mv)
    assert (w["kind"], w["skipped"], w["used"]) == ("no_reference", 5, 15000)
    assert value_warnings(spec, MetricValue(value=3.0, n=20000, extras={"n_reference": 15000})) == []


# --------------------------------------------------------------------------------------------------- a tiny run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("small_n")
    cache_with_session_weights(session_cache, root / "cache")
    structured_images(root / "gen", N_PROMPTS, seed=1411, size=32)
    refs = structured_images(root / "ref", N_REFS, seed=1412, size=32)
    man = root / "m.jsonl"
    lines = []
    for i in range(N_PROMPTS):
        rec = {"id": f"{i:04d}", "caption": f"a scene number {i}"}
        if i < N_REFS:
            rec["reference"] = str(refs[i])
        lines.append(json.dumps(rec) + "\n")
    man.write_text("".join(lines))
    cfg = custom_run_config(root, man, "print_table=true", "metrics.ids=[clip_rp,is,fid]")
    return cfg, root / "res" / "tiny" / "m" / "metrics.json"


@pytest.fixture(scope="module")
def ran(tiny_run):
    cfg, path = tiny_run
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tise_bench")
    logger.addHandler(handler)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            (result,) = run(cfg)
    finally:
        logger.removeHandler(handler)
    return result, json.loads(path.read_text()), out.getvalue(), [r.getMessage() for r in records]


def _small(entry: dict) -> dict[str, dict]:
    return {w["what"]: w for w in entry.get("warnings", []) if w["kind"] == "small_n"}


def test_run_writes_small_n_warnings_with_the_numbers(ran):
    _, mj, _, _ = ran
    m = mj["metrics"]
    rp = _small(m["clip_rp"])["candidates per image"]
    assert (rp["used"], rp["threshold"]) == (m["clip_rp"]["n_candidates"], 100) and rp["used"] == N_PROMPTS
    is_ = _small(m["is"])["images per split"]
    assert (is_["used"], is_["threshold"]) == (pytest.approx(N_PROMPTS / m["is"]["splits"]), 2933)
    fid = _small(m["fid"])
    assert (fid["generated images"]["used"], fid["generated images"]["threshold"]) == (N_PROMPTS, 10000)
    assert (fid["reference images"]["used"], fid["reference images"]["threshold"]) == (N_REFS, 10000)
    assert all("not comparable to published numbers" in w["message"] for w in fid.values())


def test_missing_references_are_counted_and_warned(ran):
    result, mj, table, logs = ran
    fid = mj["metrics"]["fid"]
    assert fid["skipped"] == {"no_reference": N_PROMPTS - N_REFS} and fid["n_reference"] == N_REFS
    assert mj["counts"]["no_reference"] == N_PROMPTS - N_REFS
    (w,) = [w for w in fid["warnings"] if w["kind"] == "no_reference"]
    assert (w["skipped"], w["used"]) == (N_PROMPTS - N_REFS, N_REFS)
    assert any("4 of 12 records of subset" in m and "no 'reference'" in m for m in logs), logs
    assert "skipped" not in mj["metrics"]["clip_rp"]  # RP reads no reference image
    header, _, row = table.splitlines()[1:4]
    assert row.split()[-1] == str(N_PROMPTS - N_REFS)  # the table's skipped column counts them
    (note,) = [ln for ln in table.splitlines() if ln.startswith("note: m:")]
    assert f"{N_PROMPTS - N_REFS} left out for want of a 'reference'" in note and note.endswith("reference_stats")
    assert "FID" in note and "RP" not in note


def test_cli_table_marks_small_n_values_with_a_legend(ran):
    _, _, table, _ = ran
    lines = table.splitlines()
    heads, row = lines[1].split(), lines[3].split()
    for display in ("RP↑", "IS↑", "FID↓"):
        assert row[heads.index(display)].endswith(SMALL_N_MARK), (display, lines)
    legend = [ln for ln in lines if ln.startswith(f"{SMALL_N_MARK} too few samples")]
    assert len(legend) == 1
    assert f"RP {N_PROMPTS} candidates per image < 100" in legend[0]
    assert f"FID {N_PROMPTS} generated images < 10000" in legend[0] and f"FID {N_REFS} reference images" in legend[0]


def test_values_are_unchanged_by_the_warnings(ran):
    result, mj, _, _ = ran
    for mid, mv in result.metrics.items():
        assert mj["metrics"][mid]["value"] == pytest.approx(mv.value, rel=0, abs=0)
