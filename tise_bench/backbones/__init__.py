"""Backbone construction from the ``backbones`` config group (``real`` or ``random``).

Weights precedence, the same for every backbone: an explicitly given ``backbones.<name>.weights`` is always
used, also under ``backbones=random`` (that backbone is then real: ``random_weights`` false in its
``describe()``, its file's sha256 in ``weights_hash``; a warning says so). Only a backbone without a weights
file gets the seeded random variant under ``backbones=random``. The ``random`` config files therefore
carry no weights, so nothing given there is ever dropped.

TISE's fine-tuned classifiers (``object_classifier``: COCO-80 for O-IS/O-FID; ``bird_classifier``: CUB-50 for
CUB IS*) are user-supplied files. They are built when a metric needs them and either a weights file is
given or their random variant is asked for explicitly (``backbones.<name>.random=true``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .base import ImageBackbone

log = logging.getLogger(__name__)
_BUILT: dict[tuple, ImageBackbone] = {}  # one instance per process and config (sweeps reuse networks)
KNOWN = ("clip", "inception", "detector", "object_classifier", "bird_classifier")


def explicit_weights(cfg: dict[str, Any]) -> str | None:
    """The weights file (or model name) the config gives for one backbone, or None."""
    w = cfg.get("weights")
    return str(w) if w not in (None, "") else None


def build_backbone(name: str, cfg: dict[str, Any], *, random: bool, seed: int, cache_dir: str | Path,
                   device: str, amp: bool = False) -> ImageBackbone:
    """One backbone, built once per process and config. ``amp``: fp16 autocast on CUDA for the backbones
    that allow it (CLIP, detector); ignored on CPU and for Inception.

    ``random`` is the backbone set's flag (``backbones=random``); a weights file given for this backbone
    overrides it (see the module docstring): the file is used, never dropped.
    """
    weights = explicit_weights(cfg)
    use_random = bool(random or cfg.get("random")) and weights is None
    if name == "detector" and cfg.get("imported"):
        weights = None  # imported detections replace the detector: its weights are not used
    if random and weights is not None:
        log.warning("backbones.%s.weights=%s is given with backbones=random: %s uses these REAL weights "
                    "(the other backbones stay random)", name, weights, name)
    common = dict(random=use_random, seed=seed, cache_dir=str(cache_dir), device=device)
    if name == "clip":
        from .clip import ClipBackbone as cls

        kwargs = dict(model=cfg.get("model", "ViT-B-32"), pretrained=cfg.get("pretrained", "openai"),
                      weights=weights, **common)
    elif name == "inception":
        from .inception import InceptionBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=weights, **common)
    elif name == "detector" and cfg.get("imported"):  # detections from a file (imported_detections.py)
        from .imported_detections import ImportedDetections as cls  # type: ignore[assignment]

        kwargs = dict(path=str(cfg["imported"]), max_det=int(cfg.get("max_det", 100)), cache_dir=str(cache_dir))
    elif name == "detector":
        from .detector import DetectorBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=weights, arch=cfg.get("arch", "yolov8n.yaml"),
                      imgsz=int(cfg.get("imgsz", 640)), conf=float(cfg.get("conf", 0.05)),
                      iou=float(cfg.get("iou", 0.5)), max_det=int(cfg.get("max_det", 100)), **common)
    elif name == "object_classifier":
        from .object_classifier import ObjectClassifierBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=weights, num_classes=int(cfg.get("num_classes", 80)), **common)
    elif name == "bird_classifier":
        from .bird_classifier import BirdClassifierBackbone as cls  # type: ignore[assignment]

        kwargs = dict(weights=weights, num_classes=int(cfg.get("num_classes", 50)), **common)
    else:
        raise ConfigError(f"unknown backbone {name!r} under backbones; known: {', '.join(KNOWN)}")
    key = (name, amp, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _BUILT:
        bb = cls(**kwargs)
        dev = getattr(bb, "device", None)
        bb.amp = bool(amp and bb.amp_capable and isinstance(dev, torch.device) and dev.type == "cuda")
        _BUILT[key] = bb
    return _BUILT[key]


def use_object_classifier(cfg: dict[str, Any]) -> bool:
    """TISE's COCO-80 classifier is built for the crops when its weights are given or random is asked for."""
    sub = cfg.get("object_classifier") or {}
    return bool(explicit_weights(sub) or sub.get("random"))


def use_bird_classifier(cfg: dict[str, Any]) -> bool:
    """TISE's CUB bird classifier is available when its weights are given or its random variant is asked for."""
    sub = cfg.get("bird_classifier") or {}
    return bool(explicit_weights(sub) or sub.get("random"))


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
    if any(b.is_random for b in out.values()):
        log.warning("*** RANDOM-WEIGHTS BACKBONES: numbers are for smoke tests only, not comparable to any paper ***")
    return out
