"""Letterbox geometry for the detector: resize keeping the aspect ratio, pad to a square, and map boxes back.

The arithmetic is ultralytics' ``LetterBox(auto=False, center=True)`` and ``ops.scale_boxes``: scale
``r = min(S/h, S/w)``, resized sides ``round(w·r)``, ``round(h·r)`` (at least 1 pixel), padding split
between both sides (left/top = ``round(pad/2 - 0.1)``), pad value 114, cv2 bilinear resize. Keeping the
output square and fixed (not ultralytics' ``auto`` minimum rectangle) lets images of any size share a
batch. Only the original ``(w, h)`` is needed to invert the mapping, so nothing per image is remembered.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

PAD_VALUE = 114


class Geometry(NamedTuple):
    """Where an original ``w×h`` image lands inside the ``size×size`` letterbox."""

    new_w: int
    new_h: int
    left: int
    top: int


def geometry(w: int, h: int, size: int) -> Geometry:
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    left = round((size - new_w) / 2 - 0.1)
    top = round((size - new_h) / 2 - 0.1)
    return Geometry(new_w, new_h, left, top)


def letterbox(img: Image.Image, size: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size): aspect kept, padded with 114 (as ultralytics). Written into
    ``out`` (a CPU uint8 ``(3, size, size)``, e.g. its row of a batch) when given."""
    g = geometry(img.width, img.height, size)
    dst = torch.empty((3, size, size), dtype=torch.uint8) if out is None else out
    arr_out = dst.numpy()
    _pad(arr_out, g, size)
    # channel by channel, written straight into the (3, S, S) output: cv2's INTER_LINEAR treats channels
    # independently, so the values are those of one 3-channel resize (tests/backbones/test_letterbox_planar.py),
    # without transposing the S x S x 3 result (a copy that cost more than the resize)
    for c, band in enumerate((img if img.mode == "RGB" else img.convert("RGB")).split()):
        arr = np.asarray(band)
        region = arr_out[c, g.top : g.top + g.new_h, g.left : g.left + g.new_w]
        if (img.width, img.height) == (g.new_w, g.new_h):
            region[...] = arr
            continue
        resize_into(arr, region)
    return dst


def resize_into(src: np.ndarray, dst: np.ndarray) -> None:
    """cv2's ``INTER_LINEAR`` resize of the 2-D uint8 ``src`` to ``dst``'s shape, written into ``dst`` (a row of a
    batch, or a strided region of one). cv2 returns ``dst`` itself when it writes there; were it ever to return
    another array, that is copied in, never silently lost."""
    import cv2  # ultralytics' own dependency; same resize kernel as its predictor

    got = cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_LINEAR)
    if got is not dst:
        dst[...] = got


def _pad(arr: np.ndarray, g: Geometry, size: int) -> None:
    """Fill the padding bands of a ``(3, size, size)`` letterbox with 114 (the image region is written next)."""
    arr[:, : g.top] = PAD_VALUE
    arr[:, g.top + g.new_h :] = PAD_VALUE
    arr[:, g.top : g.top + g.new_h, : g.left] = PAD_VALUE
    arr[:, g.top : g.top + g.new_h, g.left + g.new_w :] = PAD_VALUE


def letterbox_tensor(
    pixels: torch.Tensor, size: int, out: torch.Tensor | None = None, *, uint8_math: bool | None = None
) -> torch.Tensor:
    """``backbones.preprocess=fast``: uint8 ``(3, H, W)`` on any device -> uint8 ``(3, size, size)`` there (into
    ``out`` when given, on the same device); a batch ``(B, 3, H, W)`` of images of one size -> ``(B, 3, size,
    size)``, each row the single image's letterbox (one resize for the batch).

    The geometry of :func:`letterbox`; the resize is torch's bilinear (half-pixel centres, no antialias, as cv2's
    ``INTER_LINEAR``): uint8 arithmetic on the CPU (5x faster than float there), float rounded on other devices
    (``uint8_math`` overrides the choice; tests); a pixel differs from cv2's fixed-point result by at most 1."""
    h, w = pixels.shape[-2:]
    g = geometry(w, h, size)
    batch = pixels if pixels.dim() == 4 else pixels[None]
    x = batch
    if uint8_math is None:
        uint8_math = pixels.device.type == "cpu"
    if (w, h) != (g.new_w, g.new_h):
        resize = torch.nn.functional.interpolate
        if uint8_math:
            x = resize(batch, size=(g.new_h, g.new_w), mode="bilinear", align_corners=False)
        else:
            x = resize(batch.float(), size=(g.new_h, g.new_w), mode="bilinear", align_corners=False)
            x = x.round_().clamp_(0, 255).to(torch.uint8)
    shape = (*pixels.shape[:-3], 3, size, size)
    if out is None:
        out = torch.full(shape, PAD_VALUE, dtype=torch.uint8, device=pixels.device)
    else:
        out.fill_(PAD_VALUE)
    out[..., g.top : g.top + g.new_h, g.left : g.left + g.new_w] = x if pixels.dim() == 4 else x[0]
    return out


def to_letterbox(boxes: torch.Tensor, w: int, h: int, size: int) -> torch.Tensor:
    """xyxy boxes in original pixels -> letterbox pixels (the forward map; used by tests)."""
    g = geometry(w, h, size)
    gx, gy = g.new_w / w, g.new_h / h
    out = boxes.clone().float()
    out[:, 0::2] = out[:, 0::2] * gx + g.left
    out[:, 1::2] = out[:, 1::2] * gy + g.top
    return out


def from_letterbox(boxes: torch.Tensor, w: int, h: int, size: int) -> torch.Tensor:
    """xyxy boxes in letterbox pixels -> original image pixels, clipped to ``[0, w] × [0, h]``."""
    g = geometry(w, h, size)
    gx, gy = g.new_w / w, g.new_h / h  # per-axis gains, as ultralytics (sides were rounded separately)
    out = boxes.clone().float()
    out[:, 0::2] = ((out[:, 0::2] - g.left) / gx).clamp(0, w)
    out[:, 1::2] = ((out[:, 1::2] - g.top) / gy).clamp(0, h)
    return out
