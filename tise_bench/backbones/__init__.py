"""Backbone construction from the ``backbones`` config group (``real`` or ``random``), over the registry.

Each backbone registers itself with its config dataclass (:mod:`.registry`); building looks the name up
there, checks the block against the dataclass and calls the registered class (or its variant, e.g. imported
detections for ``detector.imported``). Stages that metrics name like backbones (``crops``) expand to the
backbones they declare.

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
import threading
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .base import ImageBackbone
from .lazy import LazyBackbone, card_key, device_type, has_card, read_card, write_card
from .registry import BuildContext, expand_stages, explicit_weights, get_backbone, provided, validate

__all__ = ["build_backbone", "build_backbones", "explicit_weights", "use_bird_classifier", "use_object_classifier"]

log = logging.getLogger(__name__)
_BUILT: dict[tuple, ImageBackbone] = {}  # one instance per process and config (sweeps reuse networks)
_BUILD_LOCK = threading.RLock()


def _construction(
    name: str,
    cfg: dict[str, Any],
    *,
    random: bool,
    seed: int,
    cache_dir: str | Path,
    device: str,
    amp: bool,
    preprocess: str,
) -> tuple[type, dict[str, Any], tuple]:
    """What :func:`build_backbone` constructs: the class, its keyword arguments and the per-process key."""
    entry = get_backbone(name)
    config = entry.parse(cfg)
    cls, make_kwargs = entry.select(config)
    weights = config.weights or None
    ctx = BuildContext(
        weights=weights,
        random=bool(random or config.random) and weights is None,
        seed=seed,
        cache_dir=str(cache_dir),
        device=device,
    )
    kwargs = make_kwargs(config, ctx)
    key: tuple = (name, amp, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if preprocess != "exact":  # another instance (its namespace differs); exact keeps the key it always had
        key += (preprocess,)
    return cls, kwargs, key


def build_backbone(
    name: str,
    cfg: dict[str, Any],
    *,
    random: bool,
    seed: int,
    cache_dir: str | Path,
    device: str,
    amp: bool = False,
    preprocess: str = "exact",
) -> ImageBackbone:
    """One backbone, built once per process and config. ``amp``: fp16 autocast on CUDA for the backbones
    that allow it (``amp_capable``: CLIP, detector); ignored on CPU and for the others. ``preprocess``: the
    set's ``exact`` | ``fast`` mode (``fast`` changes the namespace of backbones with a ``fast_path`` only).

    ``random`` is the backbone set's flag (``backbones=random``); a weights file given for this backbone
    overrides it (see the module docstring): the file is used, never dropped.
    """
    cls, kwargs, key = _construction(
        name, cfg, random=random, seed=seed, cache_dir=cache_dir, device=device, amp=amp, preprocess=preprocess
    )
    if random and kwargs.get("weights") is not None:  # a variant without weights (imported detections) uses none
        log.warning(
            "backbones.%s.weights=%s is given with backbones=random: %s uses these REAL weights "
            "(the other backbones stay random)",
            name,
            kwargs["weights"],
            name,
        )
    with _BUILD_LOCK:  # one construction per key, also when input worker threads ask at once (seeded RNG)
        bb = _BUILT.get(key)
        if bb is None:
            bb = _construct(cls, kwargs, key, amp, preprocess)
    ck = card_key(cls, key, kwargs, device_type(device))
    if ck is not None and not has_card(cache_dir, ck):  # what a later run reads without building it (lazy.py)
        write_card(bb, cache_dir, ck)
    return bb


def _construct(cls: type, kwargs: dict[str, Any], key: tuple, amp: bool, preprocess: str) -> ImageBackbone:
    bb = cls(**kwargs)
    dev = getattr(bb, "device", None)
    bb.amp = bool(amp and bb.amp_capable and isinstance(dev, torch.device) and dev.type == "cuda")
    bb.preprocess_mode = preprocess
    _BUILT[key] = bb
    return bb


def use_object_classifier(cfg: dict[str, Any]) -> bool:
    """TISE's COCO-80 classifier is built for the crops when its weights are given or random is asked for."""
    return provided(cfg, "object_classifier")


def use_bird_classifier(cfg: dict[str, Any]) -> bool:
    """TISE's CUB bird classifier is available when its weights are given or its random variant is asked for."""
    return provided(cfg, "bird_classifier")


def build_backbones(
    cfg: dict[str, Any], needed: set[str], cache_dir: str | Path, *, lazy: bool = False
) -> dict[str, ImageBackbone]:
    """Build only the backbones some selected metric needs (a CLIP-only run never loads Inception); a stage
    in ``needed`` (``crops``) stands for the backbones it declares. The whole group is checked first, then every
    weights file of the non-random backbones (one error naming all the missing ones, :mod:`tise_bench.weights`).

    ``lazy`` (the CLI and the API): a backbone whose card is in the cache (written when it was last built,
    :mod:`.lazy`) is a :class:`~.lazy.LazyBackbone`, built only when a feature is missing from the cache, so a
    fully cached re-run builds no network."""
    top = validate(cfg)
    names = sorted(expand_stages(cfg, needed))
    if not top.random or any(explicit_weights(cfg.get(n) or {}) for n in names):  # random runs: no file to check
        from ..weights import check_before_build

        check_before_build(cfg, names, cache_dir)
    out: dict[str, ImageBackbone] = {}
    for name in names:
        sub = cfg.get(name)
        if sub is None:
            get_backbone(name)  # an unregistered name gets a did-you-mean first
            raise ConfigError(f"metrics need backbone {name!r} but backbones.{name} is not configured")
        args: dict[str, Any] = dict(
            random=top.random, seed=top.seed, cache_dir=cache_dir, device=top.device, amp=top.amp
        )
        got = _lazy(name, dict(sub), args, top.preprocess) if lazy else None
        out[name] = got if got is not None else build_backbone(name, dict(sub), **args, preprocess=top.preprocess)
    if any(b.is_random for b in out.values()):
        log.warning("*** RANDOM-WEIGHTS BACKBONES: numbers are for smoke tests only, not comparable to any paper ***")
    return out


def _lazy(name: str, sub: dict[str, Any], args: dict[str, Any], preprocess: str) -> Any:
    """A :class:`~.lazy.LazyBackbone` when this backbone has a card in the cache and is not built in this process
    yet, else None (then it is built now)."""
    cls, kwargs, key = _construction(name, sub, **args, preprocess=preprocess)
    if key in _BUILT:
        return _BUILT[key]
    ck = card_key(cls, key, kwargs, device_type(args["device"]))
    card = read_card(args["cache_dir"], ck) if ck is not None else None
    if card is None:
        return None
    return LazyBackbone(name, card, lambda: build_backbone(name, sub, **args, preprocess=preprocess))
