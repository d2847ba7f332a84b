"""Object crops for O-IS / O-FID (SPEC §3): every detection at score ≥ threshold becomes a crop.

The box is clipped to the image and rounded outwards to whole pixels; boxes with a side shorter than
``min_side`` pixels (default 4) after clipping are skipped (too small to classify, and TISE's crops of
1–2 px would only add noise). ``max_per_image`` keeps only the highest-scoring crops of an image: unset
for real detectors (TISE keeps all); the random backbone set caps it (``backbones.detector.max_crops``)
because a random detector fires dozens of boxes on some images and would make smoke runs slow. Each crop is resized to 299×299 (aspect ratio not kept, as TISE does)
with PIL bilinear and handed to the crop backbones as uint8, so O-FID/O-IS equal torch-fidelity run on
the same crops saved as PNG.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

CROP_SIZE = 299
CROP_VERSION = "crop-v1"


@dataclass(frozen=True)
class CropSpec:
    threshold: float = 0.5
    min_side: int = 4
    size: int = CROP_SIZE
    max_per_image: int | None = None  # None = every detection (TISE); random detectors are capped (see README)

    @property
    def tag(self) -> str:
        cap = f"-k{self.max_per_image}" if self.max_per_image else ""
        return f"{CROP_VERSION}-t{self.threshold:g}-m{self.min_side}-s{self.size}{cap}"


def crop_boxes(dets: np.ndarray, width: int, height: int, spec: CropSpec) -> list[tuple[int, int, int, int, int]]:
    """-> [(x1, y1, x2, y2, class_id)] integer pixel boxes for detections at score ≥ threshold."""
    out: list[tuple[int, int, int, int, int]] = []
    order = np.argsort(-np.asarray(dets)[:, 4], kind="stable")  # highest score first
    for x1, y1, x2, y2, score, cls in np.asarray(dets, dtype=np.float64)[order]:
        if spec.max_per_image is not None and len(out) >= spec.max_per_image:
            break
        if score < spec.threshold:
            continue
        a, b = max(0, math.floor(x1)), max(0, math.floor(y1))
        c, d = min(width, math.ceil(x2)), min(height, math.ceil(y2))
        if c - a < spec.min_side or d - b < spec.min_side:
            continue
        out.append((a, b, c, d, int(cls)))
    return out


def crop_key(image_sha: str, box: tuple[int, int, int, int, int]) -> str:
    return hashlib.sha256(f"{image_sha}|{box}".encode()).hexdigest()


def make_crop(img: Image.Image, box: tuple[int, int, int, int, int], size: int = CROP_SIZE) -> Image.Image:
    return img.crop(box[:4]).resize((size, size), Image.BILINEAR)
