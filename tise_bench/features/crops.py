"""Object crops for O-IS / O-FID (SPEC §3): every detection at score ≥ threshold becomes a crop.

The box is clipped to the image and turned into whole pixels by ``rounding``:

* ``nearest`` (default, TISE): each coordinate rounded to the nearest integer with Python's ``round`` — what
  TISE's ``object_fidelity/crop_object.py`` gets from ``PIL.Image.crop(float box)`` (Pillow's ``_crop`` does
  ``map(int, map(round, box))``);
* ``outward``: floor of the top-left, ceil of the bottom-right (the whole box is kept; tise_bench ≤ 0.1).

Boxes with a side shorter than ``min_side`` pixels after rounding are skipped and counted (default 1: only
empty crops, which TISE's resize would fail on; 4 drops TISE's 1–3 px crops as noise, a divergence).
``max_per_image`` keeps only the highest-scoring crops of an image: unset for real detectors (TISE keeps
all); the random backbone set caps it (``backbones.detector.max_crops``) because a random detector fires
dozens of boxes on some images and would make smoke runs slow. Each crop is resized to 299×299 (aspect ratio
not kept, as TISE does) with PIL bilinear — TISE saves the crop as PNG and torchvision's
``Resize((299, 299))`` calls the same PIL resize — and handed to the crop backbones as uint8, so O-FID/O-IS
equal torch-fidelity run on the same crops saved as PNG.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError

CROP_SIZE = 299
CROP_VERSION = "crop-v1"
ROUNDINGS = ("nearest", "outward")


@dataclass(frozen=True)
class CropSpec:
    threshold: float = 0.5
    min_side: int = 1
    size: int = CROP_SIZE
    max_per_image: int | None = None  # None = every detection (TISE); random detectors are capped (see README)
    rounding: str = "nearest"  # nearest (TISE: PIL crop of a float box) | outward

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise ConfigError(
                f"metrics.crops.rounding={self.rounding!r} is not valid; choose one of "
                f"{', '.join(ROUNDINGS)} (nearest = TISE's PIL crop of the float box)"
            )
        if int(self.min_side) < 1:
            raise ConfigError(f"metrics.crops.min_side={self.min_side} must be >= 1 (an empty crop cannot be resized)")

    @property
    def tag(self) -> str:
        cap = f"-k{self.max_per_image}" if self.max_per_image else ""
        rnd = "" if self.rounding == "outward" else f"-r{self.rounding}"  # outward kept the original tag
        return f"{CROP_VERSION}-t{self.threshold:g}-m{self.min_side}-s{self.size}{cap}{rnd}"

    @property
    def tise_divergences(self) -> list[str]:
        out = []
        if self.rounding != "nearest":
            out.append(f"crop rounding={self.rounding} (TISE: nearest, PIL crop of the float box)")
        if self.min_side > 1:
            out.append(f"crops smaller than {self.min_side} px dropped (TISE keeps them)")
        if self.max_per_image:
            out.append(f"at most {self.max_per_image} crops per image (TISE: all)")
        return out


def crop_boxes(dets: np.ndarray, width: int, height: int, spec: CropSpec) -> list[tuple[int, int, int, int, int]]:
    """-> [(x1, y1, x2, y2, class_id)] integer pixel boxes for detections at score ≥ threshold."""
    out: list[tuple[int, int, int, int, int]] = []
    order = np.argsort(-np.asarray(dets)[:, 4], kind="stable")  # highest score first
    rows = np.asarray(dets, dtype=np.float64)[order]
    rows = rows[~(rows[:, 4] < spec.threshold)]  # rows below the threshold (padding rows among them) never count
    for x1, y1, x2, y2, score, cls in rows.tolist():
        if spec.max_per_image is not None and len(out) >= spec.max_per_image:
            break
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(width), x2), min(float(height), y2)
        if spec.rounding == "nearest":
            a, b, c, d = (int(round(v)) for v in (x1, y1, x2, y2))
        else:
            a, b, c, d = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
        if c - a < spec.min_side or d - b < spec.min_side:
            continue
        out.append((a, b, c, d, int(cls)))
    return out


def crop_key(image_sha: str, box: tuple[int, int, int, int, int]) -> str:
    return hashlib.sha256(f"{image_sha}|{box}".encode()).hexdigest()


def make_crop_tensor(
    pixels: torch.Tensor, box: tuple[int, int, int, int, int], size: int = CROP_SIZE, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``backbones.preprocess=fast``: the crop of uint8 ``(3, H, W)`` pixels resized to uint8 ``(3, size, size)`` on
    their device (written into ``out`` when given, e.g. the crop's row of its batch), each pixel within 1 grey level
    of :func:`make_crop` (PIL's bilinear):

    * a crop enlarged on both axes (the usual case: objects are smaller than 299 px), on the CPU: cv2's bilinear,
      channel by channel. PIL widens its triangle filter only when it shrinks, so on enlargement its filter is the
      plain 2-tap bilinear with half-pixel centres that cv2's ``INTER_LINEAR`` computes; only the fixed-point
      rounding differs. cv2 is ~3x faster than torch here;
    * a crop shrunk on an axis: torch's bilinear with antialias (its port of PIL's filter; cv2 would alias): uint8
      arithmetic on the CPU, float rounded on other devices."""
    x1, y1, x2, y2 = box[:4]
    if pixels.device.type == "cpu" and x2 - x1 <= size and y2 - y1 <= size:
        from ..backbones.letterbox import resize_into  # (cv2: ultralytics' own dependency)

        dst = out if out is not None else torch.empty((3, size, size), dtype=torch.uint8)
        # the crop copied out once, channel-planar: cv2 would copy each strided channel itself (the pixels are an
        # (H, W, 3) array seen as (3, H, W)) in its argument conversion, which holds the GIL; numpy's copy does not
        src, planes = np.ascontiguousarray(pixels.numpy()[:, y1:y2, x1:x2]), dst.numpy()
        for c in range(3):
            resize_into(src[c], planes[c])
        return dst
    crop = pixels[:, y1:y2, x1:x2][None]
    if pixels.device.type == "cpu":  # the strided view as it is: torch's uint8 path reads it (as fast, no copy)
        res = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    else:
        res = F.interpolate(crop.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        res = res.round_().clamp_(0, 255).to(torch.uint8)
    if out is None:
        return res.contiguous()
    return out.copy_(res)


def make_crop(img: Image.Image, box: tuple[int, int, int, int, int], size: int = CROP_SIZE) -> Image.Image:
    return img.crop(box[:4]).resize((size, size), Image.Resampling.BILINEAR)


def crop_batch_tensor(
    images: torch.Tensor,
    items: list[tuple[int, tuple[int, int, int, int, int]]],
    size: int = CROP_SIZE,
    *,
    sampled: bool | None = None,
) -> torch.Tensor:
    """``backbones.preprocess=fast`` on a device: the crops ``items`` = [(row of ``images``, box)] of uint8
    ``(B, 3, H, W)`` images of one size -> uint8 ``(n, 3, size, size)`` on their device, crop i for ``items[i]``.

    The crops enlarged on both axes (the usual case) are sampled in one ``grid_sample`` for the whole batch: each
    image's crops stacked as tiles of one output, at the source coordinates ``F.interpolate`` computes for the cut
    crop (half-pixel centres, clamped to the crop's edge pixels: nothing outside the box is sampled), in float and
    rounded, as :func:`make_crop_tensor` does on a device (within 1 grey level of it and of PIL). Crops shrunk on an
    axis need the antialiased filter and are made one by one by :func:`make_crop_tensor`. On the CPU (``sampled``
    unset) every crop is made by :func:`make_crop_tensor`, cv2's resize (``sampled`` forces the choice; tests)."""
    if sampled is None:
        sampled = images.device.type != "cpu"
    out = torch.empty((len(items), 3, size, size), dtype=torch.uint8, device=images.device)
    tiles: dict[int, list[int]] = {}  # image row -> the crops sampled from it (their index in ``items``)
    for i, (b, box) in enumerate(items):
        x1, y1, x2, y2 = box[:4]
        if sampled and x2 - x1 <= size and y2 - y1 <= size:
            tiles.setdefault(b, []).append(i)
        else:
            make_crop_tensor(images[b], box, size, out=out[i])
    if not tiles:
        return out
    _, _, h, w = images.shape
    rows = list(tiles)
    k = max(len(v) for v in tiles.values())
    # source pixel coordinates per tile: (B', k, size) along x and y, in float64, then normalised for grid_sample
    # (align_corners=False: pixel p is at (2p + 1) / W - 1); an unused tile samples pixel (0, 0)
    j = torch.arange(size, dtype=torch.float64) + 0.5
    sx = torch.zeros((len(rows), k, size), dtype=torch.float64)
    sy = torch.zeros((len(rows), k, size), dtype=torch.float64)
    for r, b in enumerate(rows):
        for t, i in enumerate(tiles[b]):
            x1, y1, x2, y2 = items[i][1][:4]
            sx[r, t] = x1 + (j * ((x2 - x1) / size) - 0.5).clamp(0, x2 - x1 - 1)
            sy[r, t] = y1 + (j * ((y2 - y1) / size) - 0.5).clamp(0, y2 - y1 - 1)
    gx = ((2 * sx + 1) / w - 1).float()[:, :, None, :].expand(-1, -1, size, -1)  # (B', k, size_y, size_x)
    gy = ((2 * sy + 1) / h - 1).float()[:, :, :, None].expand(-1, -1, -1, size)
    grid = torch.stack((gx, gy), dim=-1).reshape(len(rows), k * size, size, 2).to(images.device)
    src = images[torch.tensor(rows, device=images.device)].float()
    res = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    res = res.round_().clamp_(0, 255).to(torch.uint8).reshape(len(rows), 3, k, size, size)
    for r, b in enumerate(rows):
        for t, i in enumerate(tiles[b]):
            out[i] = res[r, :, t]
    return out
