"""Typed backbone registry: every backbone class registers itself with the dataclass of its config block.

``@register_backbone("clip", config=ClipConfig)`` on the class is the whole registration (as
torch-fidelity's ``register_feature_extractor``, and as metrics do with ``register_metric``). The dataclass is
the one place a backbone's config keys and code defaults live: ``backbones.<name>`` is checked against it
(an unknown key is refused, naming the valid ones) and its fields become the constructor's keyword
arguments, except the :func:`config_only` ones (read by the builder or by another module), plus the
:class:`BuildContext` (resolved weights and random flag, seed, cache folder, device).

A *variant* replaces the registered class when its selector key is set
(``@register_variant("detector", selector="imported")``: detections imported from a file stand in for the
detector network). A *stage* is a step between backbones that metrics name as if it were one backbone
(``crops``: the detector's boxes, cut out and scored by the crop backbones); it declares what it needs.

Every module of this package is imported on first lookup, so a new backbone is its module and its test.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from ..errors import ConfigError

T = TypeVar("T", bound=type)
_CONFIG_ONLY = "config_only"


def config_only(default: Any) -> Any:
    """A config key that is not a constructor argument (the builder or another module reads it)."""
    return field(default=default, metadata={_CONFIG_ONLY: True})


PREPROCESS_MODES = ("exact", "fast")


@dataclass(frozen=True)
class BackboneSetConfig:
    """The top level of the ``backbones`` group (``configs/backbones/*.yaml``) besides the backbone blocks."""

    random: bool = False  # seeded random weights for every backbone without a weights file (smoke tests)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    amp: bool = False  # CUDA only: fp16 autocast for the backbones that allow it (own cache namespace)
    #: exact: each backbone's reference preprocessing (PIL, bit-identical to the reference tools) | fast: each image
    #: uploaded once as uint8 and resized / normalised / letterboxed / cropped with torch on the backbone's device
    #: (own cache namespace, a comparability field; its effect on every metric: ``scripts/bench.py --fast``)
    preprocess: str = "exact"

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ConfigError(
                f"backbones.preprocess={self.preprocess!r} is not valid; choose exact (the reference tools' PIL "
                f"preprocessing, bit-identical) or fast (torch on the device, own cache namespace)"
            )


@dataclass(frozen=True)
class BackboneConfig:
    """Keys every backbone block has; a backbone's config dataclass extends this one."""

    weights: str | None = config_only(None)  # a local file or a library model name; wins over backbones=random
    random: bool = config_only(False)  # this backbone's seeded random variant (no weights file)


@dataclass(frozen=True)
class BuildContext:
    """What the backbone set gives every backbone besides its own config block."""

    weights: str | None  # the explicit weights, or None (see backbones/__init__.py for the precedence rule)
    random: bool  # resolved: random set or this block's flag, and no weights file given
    seed: int
    cache_dir: str
    device: str


Kwargs = Callable[[Any, BuildContext], dict[str, Any]]


def constructor_kwargs(config: Any, ctx: BuildContext) -> dict[str, Any]:
    """The default: every non-config-only field of the config, plus the whole build context."""
    own = {f.name: getattr(config, f.name) for f in fields(config) if not f.metadata.get(_CONFIG_ONLY)}
    return {
        **own,
        "weights": ctx.weights,
        "random": ctx.random,
        "seed": ctx.seed,
        "cache_dir": ctx.cache_dir,
        "device": ctx.device,
    }


@dataclass(frozen=True)
class Variant:
    selector: str  # a config_only key of the base config; the variant is built when it is set
    cls: type
    kwargs: Kwargs


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    cls: type
    config: type
    kwargs: Kwargs = constructor_kwargs

    def keys(self) -> list[str]:
        return [f.name for f in fields(self.config)]

    def parse(self, block: Mapping[str, Any] | None) -> Any:
        """``backbones.<name>`` -> the typed config; unknown keys and values of the wrong type are refused."""
        block = dict(block or {})
        valid = self.keys()
        for key in block:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"backbones.{self.name}.{key} is not a setting of backbone {self.name!r}.{hint} "
                    f"Valid keys: {', '.join(valid)} (declared by {self.config.__qualname__} in "
                    f"{self.config.__module__}); fix: remove or rename the key"
                )
        hints = typing.get_type_hints(self.config)
        return self.config(**{k: _coerce(f"backbones.{self.name}.{k}", v, hints[k]) for k, v in block.items()})

    def select(self, config: Any) -> tuple[type, Kwargs]:
        """The class to build for this config: a variant whose selector is set, else the registered class."""
        for v in _VARIANTS.get(self.name, {}).values():
            if getattr(config, v.selector):
                return v.cls, v.kwargs
        return self.cls, self.kwargs


@dataclass(frozen=True)
class Stage:
    """A step metrics name like a backbone (``Need("crops", ...)``) that runs on other backbones' outputs."""

    name: str
    needs: tuple[str, ...]  # always built
    when_provided: tuple[str, ...] = ()  # built only when their block gives weights or asks for random

    def backbones(self, cfg: Mapping[str, Any]) -> set[str]:
        return set(self.needs) | {n for n in self.when_provided if provided(cfg, n)}


_ENTRIES: dict[str, BackboneEntry] = {}
_VARIANTS: dict[str, dict[str, Variant]] = {}
_STAGES: dict[str, Stage] = {}
_loaded = False


def _coerce(where: str, value: Any, hint: Any) -> Any:
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    base = next((a for a in args if a is not type(None)), hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{where}=null: expected {base.__name__}")
    if base is bool:
        if isinstance(value, (bool, int)):
            return bool(value)
        raise ConfigError(f"{where}={value!r}: expected true or false")
    try:
        return base(value) if base in (int, float, str) else value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r}: expected {base.__name__}") from None


def _check_new(kind: str, name: str, cls: type, taken: Mapping[str, Any]) -> None:
    if not name or name.strip() != name or "." in name or "/" in name:
        raise ValueError(f"{kind} name {name!r} ({cls.__module__}): non-empty, no spaces, dots or slashes")
    if name in taken:
        raise ValueError(f"{kind} {name!r} registered twice ({_owner(taken[name])} and {cls.__module__})")


def _owner(obj: Any) -> str:
    return getattr(getattr(obj, "cls", obj), "__module__", repr(obj))


def register_backbone(name: str, *, config: type, kwargs: Kwargs | None = None) -> Callable[[T], T]:
    """Class decorator: register ``cls`` as backbone ``name`` (its ``backbones.<name>`` block is ``config``).

    ``config`` is a frozen dataclass extending :class:`BackboneConfig`; ``kwargs(config, ctx)`` builds the
    constructor's keyword arguments (default :func:`constructor_kwargs`). Duplicates are rejected.
    """
    if not (is_dataclass(config) and isinstance(config, type) and issubclass(config, BackboneConfig)):
        raise ValueError(f"backbone {name!r}: config must be a dataclass extending BackboneConfig")
    missing = [f.name for f in fields(config) if f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"backbone {name!r}: config keys {missing} need a default in {config.__qualname__}")

    def deco(cls: T) -> T:
        _check_new("backbone", name, cls, {**_ENTRIES, **_STAGES})
        setattr(cls, "name", name)  # noqa: B010 (the registered name is the class's config key)
        _ENTRIES[name] = BackboneEntry(name, cls, config, kwargs or constructor_kwargs)
        return cls

    return deco


def register_variant(of: str, *, selector: str, kwargs: Kwargs) -> Callable[[T], T]:
    """Class decorator: build ``cls`` instead of backbone ``of`` when ``backbones.<of>.<selector>`` is set."""

    def deco(cls: T) -> T:
        _check_new(f"variant of {of!r} selected by", selector, cls, _VARIANTS.get(of, {}))
        setattr(cls, "name", of)  # noqa: B010
        _VARIANTS.setdefault(of, {})[selector] = Variant(selector, cls, kwargs)
        return cls

    return deco


def register_stage(name: str, *, needs: Iterable[str], when_provided: Iterable[str] = ()) -> Stage:
    stage = Stage(name, tuple(needs), tuple(when_provided))
    _check_new("stage", name, Stage, {**_ENTRIES, **_STAGES})
    _STAGES[name] = stage
    return stage


def _ensure_loaded() -> None:
    """Import every module of this package (they register themselves), then check variants and stages."""
    global _loaded
    if _loaded:
        return
    pkg = importlib.import_module(__package__)
    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{__package__}.{mod.name}")
    _loaded = True
    for of, variants in _VARIANTS.items():
        for v in variants.values():
            base = _ENTRIES.get(of)
            if base is None or v.selector not in {f.name for f in fields(base.config) if f.metadata.get(_CONFIG_ONLY)}:
                raise ValueError(f"variant {v.cls.__qualname__}: {of!r} has no config_only key {v.selector!r}")
    for s in _STAGES.values():
        unknown = [n for n in s.needs + s.when_provided if n not in _ENTRIES]
        if unknown:
            raise ValueError(f"stage {s.name!r} needs unregistered backbones {unknown}")


def all_backbones() -> dict[str, BackboneEntry]:
    _ensure_loaded()
    return dict(_ENTRIES)


def all_stages() -> dict[str, Stage]:
    _ensure_loaded()
    return dict(_STAGES)


def get_backbone(name: str) -> BackboneEntry:
    _ensure_loaded()
    if name not in _ENTRIES:
        close = difflib.get_close_matches(name, list(_ENTRIES) + list(_STAGES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown backbone {name!r} under backbones.{hint} Registered backbones: "
            f"{', '.join(sorted(_ENTRIES))}; stages: {', '.join(sorted(_STAGES)) or 'none'}."
        )
    return _ENTRIES[name]


def explicit_weights(block: Mapping[str, Any]) -> str | None:
    """The weights file (or model name) the config gives for one backbone, or None."""
    w = block.get("weights")
    return str(w) if w not in (None, "") else None


def provided(cfg: Mapping[str, Any], name: str) -> bool:
    """A backbone built only on request (TISE's classifier files): its weights are given or random is asked."""
    block = cfg.get(name) or {}
    return bool(explicit_weights(block) or block.get("random"))


def expand_stages(cfg: Mapping[str, Any], needed: Iterable[str]) -> set[str]:
    """Backbone names for ``needed``, each stage replaced by the backbones it needs."""
    _ensure_loaded()
    out: set[str] = set()
    for name in needed:
        out |= _STAGES[name].backbones(cfg) if name in _STAGES else {name}
    return out


def validate(cfg: Mapping[str, Any]) -> BackboneSetConfig:
    """Check the whole ``backbones`` group: top-level keys and every backbone block; return the set's config."""
    _ensure_loaded()
    top = [f.name for f in fields(BackboneSetConfig)]
    for key in cfg:
        if key not in top and key not in _ENTRIES:
            close = difflib.get_close_matches(str(key), sorted(top) + list(_ENTRIES), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"backbones.{key} is neither a registered backbone nor a setting of the backbone "
                f"set.{hint} Backbones: {', '.join(sorted(_ENTRIES))}; settings: {', '.join(top)}"
            )
    for name in _ENTRIES:
        if cfg.get(name) is not None:
            _ENTRIES[name].parse(cfg[name])
    hints = typing.get_type_hints(BackboneSetConfig)
    return BackboneSetConfig(**{k: _coerce(f"backbones.{k}", cfg[k], hints[k]) for k in top if k in cfg})
