"""``crop_boxes`` filters the rows below the threshold before its loop (a detector returns up to 300 rows, most of
them padding); the boxes must be those of the rule applied row by row (SPEC §3, TISE's crop of the float box)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tise_bench.features.crops import CropSpec, crop_boxes


def _row_by_row(dets, width, height, spec):
    """The rule one row at a time, highest score first: stop at max_per_image kept crops, skip rows below the
    threshold, clip to the image, round (nearest: Python's round; outward: floor / ceil), skip sides < min_side."""
    out = []
    rows = np.asarray(dets, dtype=np.float64)
    for i in np.argsort(-rows[:, 4], kind="stable"):
        x1, y1, x2, y2, score, cls = (float(v) for v in rows[i])
        if spec.max_per_image is not None and len(out) >= spec.max_per_image:
            break
        if score < spec.threshold:
            continue
        x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)
        if spec.rounding == "nearest":
            a, b, c, d = (int(round(v)) for v in (x1, y1, x2, y2))
        else:
            a, b, c, d = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
        if c - a >= spec.min_side and d - b >= spec.min_side:
            out.append((a, b, c, d, int(cls)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_crop_boxes_equal_the_rule_row_by_row(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.uniform(-20, 120, size=(n, 2))
    wh = rng.uniform(0, 60, size=(n, 2))
    dets = np.concatenate(
        [xy, xy + wh, rng.choice([0.1, 0.25, 0.5, 0.5, 0.9], size=(n, 1)), rng.integers(0, 80, (n, 1))], axis=1
    ).astype(np.float32)
    dets[rng.random(n) < 0.5] = -1.0  # padding rows (score -1)
    dets[rng.random(n) < 0.02, 4] = np.nan  # (NaN scores are not "below" the threshold: kept, as before)
    for spec in (
        CropSpec(),
        CropSpec(threshold=0.25, min_side=4, max_per_image=8),
        CropSpec(threshold=0.5, rounding="outward", max_per_image=3),
        CropSpec(threshold=0.0, min_side=2),
    ):
        assert crop_boxes(dets, 100, 90, spec) == _row_by_row(dets, 100, 90, spec), spec
