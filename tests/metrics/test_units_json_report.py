"""Units in the registry and metrics.json (issue 9 defect 6), strict JSON (defect 12), CLI table markers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tise_bench.registry import UNITS, all_metrics, register_metric
from tise_bench.report import format_table
from tise_bench.results import EvalResult
from tise_bench.types import MetricValue

# common.md contract: percent 0..100, score unbounded/ratio, distance, count_rmse
EXPECTED_UNITS = {
    "clip_rp": "percent",
    "pa": "percent",
    "soa_c": "percent",
    "soa_i": "percent",
    "clip_score": "score",
    "ref_clip_score": "score",
    "is": "score",
    "is_star": "score",
    "o_is": "score",
    "clip_i2i": "score",
    "fid": "distance",
    "o_fid": "distance",
    "ca": "count_rmse",
}


def test_every_registered_metric_declares_a_valid_unit():
    specs = all_metrics()
    assert set(EXPECTED_UNITS) <= set(specs)  # TISE's metrics; a metric added later is checked by its own test
    for mid, spec in specs.items():
        assert spec.unit in UNITS and spec.unit == EXPECTED_UNITS.get(mid, spec.unit), mid
        assert spec.meta()["unit"] == spec.unit
    with pytest.raises(ValueError, match="unit='fraction' is not one of percent"):
        register_metric(
            "x_bad_unit",
            display="X",
            higher_is_better=True,
            version="1",
            citation="",
            subset="realism",
            needs=(),
            unit="fraction",
        )


def _result(metrics: dict[str, MetricValue], meta_extra: dict | None = None, model: str = "m") -> EvalResult:
    specs = all_metrics()
    meta = {k: {**specs[k].meta(), **((meta_extra or {}).get(k, {}))} for k in metrics}
    return EvalResult(
        model=model,
        data="d",
        metrics=metrics,
        meta=meta,
        samples=pd.DataFrame(),
        provenance={"counts": {"images": 3}, "odd": {"x": float("nan"), "arr": np.array([1.0, np.inf])}},
    )


def _raise(c: str):
    raise ValueError(f"non-strict JSON constant {c}")


def test_metrics_json_is_strict_with_nan_anywhere(tmp_path):
    soa = MetricValue(
        float("nan"),
        0,
        std=float("inf"),
        extras={
            "top40": float("nan"),
            "bottom40": np.float32("nan"),
            "per_class": {"dog": np.float64("nan"), "cat": 50.0},
            "nested": [{"x": -np.inf, "ok": np.int64(3)}, (np.nan, 1.5)],
            "arr": np.array([[np.nan, 2.0]]),
            "flag": np.bool_(True),
        },
    )
    res = _result({"soa_c": soa})
    text = res.write(tmp_path).read_text()
    doc = json.loads(text, parse_constant=_raise)  # NaN / Infinity would raise here
    m = doc["metrics"]["soa_c"]
    assert m["value"] is None and m["std"] is None and m["top40"] is None and m["bottom40"] is None
    assert m["per_class"] == {"dog": None, "cat": 50.0} and m["unit"] == "percent"
    assert m["nested"] == [{"x": None, "ok": 3}, [None, 1.5]] and m["arr"] == [[None, 2.0]] and m["flag"] is True
    assert doc["odd"] == {"x": None, "arr": [1.0, None]}


def test_table_marks_fallback_and_protocol_divergence():
    ok = MetricValue(12.5, 10, extras={"fallback": False})
    fb = MetricValue(3.25, 10, extras={"fallback": True, "warning": "..."})
    res = _result(
        {"o_is": fb, "fid": ok, "soa_c": MetricValue(40.0, 10), "clip_score": MetricValue(0.7, 10)},
        meta_extra={"soa_c": {"protocol": "detector=yolov8x (TISE: Mask R-CNN R50-FPN)"}, "fid": {"protocol": "tise"}},
    )
    lines = format_table([res]).splitlines()
    row = lines[3]
    assert "3.25†" in row and "40*" in row and "12.5 " in row + " " and "12.5†" not in row and "0.7 " in row + " "
    legend = "\n".join(lines[4:])
    assert "† fallback network" in legend and "O-IS" in legend
    assert "* not TISE's protocol" in legend
    assert "    SOA-C: detector=yolov8x (TISE: Mask R-CNN R50-FPN)" in legend
    assert "FID" not in legend and "CLIP-S" not in legend
    plain = format_table([_result({"fid": ok})])
    assert "†" not in plain and "*" not in plain.replace("FID↓", "")
