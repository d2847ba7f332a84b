"""Typed metric registry: one decorator carries id, direction, version, citation and feature needs.

The runner reads ``needs`` of every selected metric, asks the FeatureBank for the union in one pass,
and then calls each metric's ``compute`` on a :class:`~tise_bench.context.MetricContext`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .context import MetricContext
    from .types import MetricValue

Role = Literal["gen", "ref", "text"]

#: What a metric's value is measured in (``metrics.json`` field ``unit``; leaderboard scale checks read it):
#: ``percent`` 0..100 (RP, PA, SOA-C, SOA-I — as in TISE's table), ``score`` an unbounded score or ratio
#: (CLIP-S, RefCLIP-S, CLIP-I2I, IS, IS*, O-IS), ``distance`` a Fréchet distance (FID, O-FID),
#: ``count_rmse`` a root-mean-square error of object counts (CA).
UNITS = ("percent", "score", "distance", "count_rmse")


@dataclass(frozen=True)
class Need:
    """A feature a metric reads: ``backbone.feature`` on generated images, reference images or text."""

    backbone: str
    feature: str
    role: Role = "gen"

    @property
    def key(self) -> str:
        return f"{self.backbone}.{self.feature}"


@dataclass(frozen=True)
class MetricSpec:
    id: str
    display: str
    higher_is_better: bool
    version: str
    citation: str
    subset: str
    needs: tuple[Need, ...]
    compute: Callable[["MetricContext", dict[str, Any]], "MetricValue"]
    unit: str
    description: str = ""

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def texts(self, records: list, params: dict[str, Any]) -> list[str]:
        """Texts this metric looks up (declared by the metric as ``compute.texts_needed``)."""
        fn = getattr(self.compute, "texts_needed", None)
        return list(fn(records, params)) if fn is not None else []

    def needs_for(self, params: dict[str, Any] | None = None) -> tuple[Need, ...]:
        """Features this metric reads with these params (``compute.needs_for`` when the network is a
        parameter, e.g. IS* on CUB reads TISE's bird classifier); else the registered ``needs``."""
        fn = getattr(self.compute, "needs_for", None)
        return tuple(fn(dict(params or {}))) if fn is not None else self.needs

    def meta(self) -> dict[str, Any]:
        return {
            "display": self.display,
            "direction": self.direction,
            "higher_is_better": self.higher_is_better,
            "version": self.version,
            "citation": self.citation,
            "subset": self.subset,
            "unit": self.unit,
        }


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(
    id: str,
    *,
    display: str,
    higher_is_better: bool,
    version: str,
    citation: str,
    subset: str,
    needs: tuple[Need, ...] | list[Need],
    unit: str,
    description: str = "",
) -> Callable[[Callable], Callable]:
    """Decorator registering ``fn(ctx, params) -> MetricValue`` under ``id``; duplicates are rejected.

    ``unit`` is one of :data:`UNITS` and is written next to every value in ``metrics.json``.
    """
    if unit not in UNITS:
        raise ValueError(f"metric {id!r}: unit={unit!r} is not one of {', '.join(UNITS)} "
                         "(tise_bench/registry.py UNITS)")

    def deco(fn: Callable) -> Callable:
        if id in _REGISTRY:
            raise ValueError(f"metric id {id!r} registered twice ({_REGISTRY[id].compute.__module__} and {fn.__module__})")
        _REGISTRY[id] = MetricSpec(
            id=id, display=display, higher_is_better=higher_is_better, version=version, citation=citation,
            subset=subset, needs=tuple(needs), compute=fn, unit=unit, description=description or (fn.__doc__ or "").strip(),
        )
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the package registers every built-in metric.
    from . import metrics  # noqa: F401


def get_metric(metric_id: str) -> MetricSpec:
    _ensure_loaded()
    if metric_id not in _REGISTRY:
        close = difflib.get_close_matches(metric_id, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown metric id {metric_id!r} in metrics.ids.{hint} Known ids: {', '.join(sorted(_REGISTRY))}."
        )
    return _REGISTRY[metric_id]


def all_metrics() -> dict[str, MetricSpec]:
    _ensure_loaded()
    return dict(_REGISTRY)


def display_to_id() -> dict[str, str]:
    """Map display names (and ids) to ids, for tables and extra-row CSVs."""
    _ensure_loaded()
    out = {s.display: s.id for s in _REGISTRY.values()}
    out.update({s.id: s.id for s in _REGISTRY.values()})
    return out
