"""SOA-C/SOA-I and CA equal hand-computed values on planted detections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.registry import get_metric

NAMES = {0: "person", 1: "dog", 2: "cat"}


def _dets(*rows, max_det=5):
    out = np.full((max_det, 6), -1.0, dtype=np.float32)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def _ctx(subset, recs, dets):
    return MetricContext(
        subset=subset,
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(len(recs))],
        gen_features={"detector.detections": np.stack(dets)},
        extra={"class_names": NAMES},
    )


def test_soa_planted():
    recs = [
        Record("a", "a dog", category="dog"),
        Record("b", "a dog", category="dog"),
        Record("c", "a dog", category="dog"),
        Record("d", "a cat", category="cat"),
        Record("e", "a man", category="person"),
        Record("f", "x", category="zebra"),
    ]
    dets = [
        _dets([0, 0, 5, 5, 0.9, 1]),  # dog found
        _dets([0, 0, 5, 5, 0.4, 1]),  # dog below threshold -> miss
        _dets(),  # nothing detected -> failure, not dropped
        _dets([0, 0, 5, 5, 0.7, 2], [1, 1, 4, 4, 0.8, 1]),  # cat found
        _dets([0, 0, 5, 5, 0.6, 1]),  # wrong class -> miss
        _dets([0, 0, 5, 5, 0.9, 1]),
    ]  # zebra: not a detector class -> skipped, counted
    ctx = _ctx("soa", recs, dets)
    c = get_metric("soa_c").compute(ctx, {"threshold": 0.5})
    i = get_metric("soa_i").compute(ctx, {"threshold": 0.5})
    # percent, as TISE's table (issue 9 defect 6)
    assert math.isclose(c.value, 100 * np.mean([1 / 3, 1.0, 0.0]))
    assert math.isclose(i.value, 40.0)
    assert c.extras["per_class"] == pytest.approx({"cat": 100.0, "dog": 100 / 3, "person": 0.0})
    assert c.skipped == {"class_not_in_detector": 1} and c.n == 5
    assert list(i.per_sample[:5]) == [1.0, 0.0, 0.0, 1.0, 0.0] and np.isnan(i.per_sample[5])
    top1 = get_metric("soa_c").compute(ctx, {"threshold": 0.5, "top_bottom": 1})
    assert math.isclose(top1.extras["top40"], 100 / 3) and top1.extras["bottom40"] in (0.0, 100.0)


def test_ca_planted_rmse():
    recs = [
        Record("a", "two dogs", counts={"dog": 2}),
        Record("b", "two dogs and a cat", counts={"dog": 2, "cat": 1}),
        Record("c", "three people", counts={"person": 3}),
        Record("d", "a scene"),
    ]
    dets = [
        _dets([0, 0, 1, 1, 0.9, 1], [0, 0, 1, 1, 0.8, 1], [0, 0, 1, 1, 0.9, 0]),  # dogs 2 (person extra ignored)
        _dets([0, 0, 1, 1, 0.9, 1], [0, 0, 1, 1, 0.3, 1]),  # dog 1 (0.3 below), cat 0
        _dets([0, 0, 1, 1, 0.99, 0]),  # person 1 vs 3
        _dets(),
    ]
    mv = get_metric("ca").compute(_ctx("ca", recs, dets), {"threshold": 0.5})
    hand = [0.0, math.sqrt(((1 - 2) ** 2 + (0 - 1) ** 2) / 2), math.sqrt((1 - 3) ** 2)]
    assert math.isclose(mv.value, np.mean(hand))
    assert mv.n == 3 and mv.skipped == {"no_counts": 1}
    np.testing.assert_allclose(mv.per_sample[:3], hand)
