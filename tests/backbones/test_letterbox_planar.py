"""The detector's exact letterbox resizes channel by channel (no transposed copy of the 640 x 640 x 3 result); its
values must be those of ultralytics' one 3-channel cv2 resize of the HWC image, padded with 114, also when written
into a batch row (``out=``; a non-square image's region of the row is strided)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tise_bench.backbones.letterbox import letterbox


def _reference(img: Image.Image, size: int) -> torch.Tensor:
    """ultralytics' LetterBox(auto=False, center=True) on the HWC array: one cv2 INTER_LINEAR resize, pad 114."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    if (w, h) != (nw, nh):
        arr = cv2.resize(arr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = round((size - nw) / 2 - 0.1), round((size - nh) / 2 - 0.1)
    out = np.full((size, size, 3), 114, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = arr
    return torch.from_numpy(out).permute(2, 0, 1)


@pytest.mark.parametrize(
    ("h", "w", "size", "mode"),
    [(256, 256, 640, "RGB"), (480, 640, 640, "RGB"), (37, 411, 640, "RGB"), (900, 700, 320, "RGB"),
     (64, 64, 64, "RGB"), (1, 5, 32, "RGB"), (120, 80, 160, "L"), (50, 70, 96, "RGBA")],
)  # fmt: skip
def test_planar_letterbox_equals_one_three_channel_resize(h, w, size, mode) -> None:
    rng = np.random.default_rng(h * 7 + w)
    arr = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0) if h > 4 else None
    arr = arr if arr is not None else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    got = letterbox(img, size)
    assert got.shape == (3, size, size) and got.dtype == torch.uint8 and got.is_contiguous()
    assert torch.equal(got, _reference(img, size))
    row = torch.full((2, 3, size, size), 7, dtype=torch.uint8)[1]  # a batch row holding stale values
    assert letterbox(img, size, out=row) is row and torch.equal(row, got)
