"""Backbone construction from the ``backbones`` config group (``real`` or ``random``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .base import ImageBackbone

log = logging.getLogger(__name__)
_BUILT: dict[tuple, ImageBackbone] = {}  # one instance per process and config (sweeps reuse networks)


def build_backbone(name: str, cfg: dict[str, Any], *, random: bool, seed: int, cache_dir: str | Path,
                   device: str, amp: bool = False) -> ImageBackbone:
    """One backbone, built once per process and config. ``amp``: fp16 autocast on CUDA for the backbones
    that allow it (CLIP, detector); ignored on CPU and for Inception."""
    common = dict(random=random, seed=seed, cache_dir=str(cache_dir), device=device)
    if name == "clip":
        from .clip import ClipBackbone as cls

        kwargs = dict(model=cfg.get("model", "ViT-B-32"), pretrained=cfg.get("pretrained", "openai"),
                      weights=cfg.get("weights"), **common)
    elif name == "inception":
        from .inception import InceptionBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=cfg.get("weights"), **common)
    elif name == "detector":
        from .detector import DetectorBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=cfg.get("weights", "yolov8x.pt"), arch=cfg.get("arch", "yolov8n.yaml"),
                      imgsz=int(cfg.get("imgsz", 640)), conf=float(cfg.get("conf", 0.05)),
                      iou=float(cfg.get("iou", 0.7)), max_det=int(cfg.get("max_det", 100)), **common)
    else:
        raise ConfigError(f"unknown backbone {name!r} under backbones; known: clip, inception, detector")
    key = (name, amp, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _BUILT:
        bb = cls(**kwargs)
        dev = getattr(bb, "device", None)
        bb.amp = bool(amp and bb.amp_capable and isinstance(dev, torch.device) and dev.type == "cuda")
        _BUILT[key] = bb
    return _BUILT[key]


def use_object_classifier(cfg: dict[str, Any]) -> bool:
    sub = cfg.get("object_classifier") or {}
    return bool(sub.get("weights") or sub.get("random"))


def build_backbones(cfg: dict[str, Any], needed: set[str], cache_dir: str | Path) -> dict[str, ImageBackbone]:
    """Build only the backbones some selected metric needs (a CLIP-only run never loads Inception)."""
    random = bool(cfg.get("random", False))
    seed = int(cfg.get("seed", 0))
    device = str(cfg.get("device", "auto"))
    needed = set(needed)
    if "crops" in needed:  # object crops: the detector finds them, Inception (+ TISE's classifier) scores them
        needed.discard("crops")
        needed |= {"detector", "inception"} | ({"object_classifier"} if use_object_classifier(cfg) else set())
    out = {}
    for name in sorted(needed):
        sub = cfg.get(name)
        if sub is None:
            raise ConfigError(f"metrics need backbone {name!r} but backbones.{name} is not configured")
        out[name] = build_backbone(name, dict(sub), random=random, seed=seed, cache_dir=cache_dir, device=device,
                                   amp=bool(cfg.get("amp", False)))
    if random:
        log.warning("*** RANDOM-WEIGHTS BACKBONES: numbers are for smoke tests only, not comparable to any paper ***")
    return out
