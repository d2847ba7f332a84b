"""Typed metric registry: one decorator carries id, direction, version, citation and feature needs.

The runner reads ``needs`` of every selected metric, asks the FeatureBank for the union in one pass,
and then calls each metric's ``compute`` on a :class:`~tise_bench.context.MetricContext`.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .context import MetricContext
    from .types import MetricValue

Role = Literal["gen", "ref", "text"]

#: What a metric's value is measured in (``metrics.json`` field ``unit``; leaderboard scale checks read it):
#: ``percent`` 0..100 (RP, PA, SOA-C, SOA-I — as in TISE's table), ``score`` an unbounded score or ratio
#: (CLIP-S, RefCLIP-S, CLIP-I2I, IS, IS*, O-IS), ``distance`` a distance between two image distributions,
#: lower = closer (Fréchet: FID, O-FID; squared MMD: KID),
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
class MinComparable:
    """Below ``threshold`` of ``what``, a metric's value is not comparable to published numbers (issue 14,
    item 4). ``count(value)`` reads the number used from the :class:`~tise_bench.types.MetricValue` (its ``n``
    or ``extras``); None = not known for this run (e.g. FID against a ``reference_stats`` file), no warning.
    ``source`` names the published protocol the threshold comes from. The value itself is never changed: a run
    only says so (``warnings`` in ``metrics.json``, a mark in the CLI table)."""

    what: str
    threshold: int
    count: Callable[["MetricValue"], float | None]
    source: str

    def check(self, value: "MetricValue", display: str = "") -> dict[str, Any] | None:
        """The ``small_n`` warning of ``value``, or None when the count is known and at least the threshold."""
        used = self.count(value)
        if used is None or used >= self.threshold or not math.isfinite(float(value.value)):
            return None
        used = int(used) if float(used).is_integer() else round(float(used), 2)
        return {
            "kind": "small_n",
            "what": self.what,
            "used": used,
            "threshold": self.threshold,
            "source": self.source,
            "message": (
                f"{display or 'value'}: {used} {self.what} < {self.threshold} ({self.source}); "
                "not comparable to published numbers"
            ),
        }


def extra_count(key: str) -> Callable[["MetricValue"], float | None]:
    """A :attr:`MinComparable.count` reading ``extras[key]`` (None when the metric did not record it)."""

    def count(value: "MetricValue") -> float | None:
        v = value.extras.get(key)
        return None if v is None else float(v)

    return count


def n_count(value: "MetricValue") -> float | None:
    """A :attr:`MinComparable.count`: the value's sample count ``n`` (generated images)."""
    return float(value.n)


@dataclass(frozen=True)
class MetricSpec:
    id: str
    display: str
    higher_is_better: bool
    version: str
    citation: str
    subset: str
    needs: tuple[Need, ...]
    fn: Callable[["MetricContext", dict[str, Any]], "MetricValue"]  # the metric's function (resolved params)
    unit: str
    description: str = ""
    formerly_fraction: bool = False  # runs written before units were recorded reported it as a fraction 0..1
    params: type | None = None  # the metric's parameters: a dataclass, the one place their defaults live
    min_comparable: tuple[MinComparable, ...] = ()  # sample sizes below which values are not comparable

    def small_n(self, value: "MetricValue") -> list[dict[str, Any]]:
        """``small_n`` warnings of one value (empty when every declared count is large enough or unknown)."""
        out = [rule.check(value, self.display) for rule in self.min_comparable]
        return [w for w in out if w is not None]

    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``metrics.params.<id>`` completed with the parameter dataclass' defaults; an unknown key or a value of
        the wrong type is refused, naming the key and the valid ones. ``subset`` (which subset the metric runs
        on) is accepted by every metric."""
        return resolve_params(self.params, given, self.id)

    def compute(self, ctx: "MetricContext", params: Mapping[str, Any] | None = None) -> "MetricValue":
        """The metric on ``ctx`` with ``params`` resolved (:meth:`resolve_params`)."""
        return self.fn(ctx, self.resolve_params(params))

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def texts(self, records: list, params: dict[str, Any]) -> list[str]:
        """Texts this metric looks up (declared by the metric as ``compute.texts_needed``)."""
        fn = getattr(self.fn, "texts_needed", None)
        return list(fn(records, self.resolve_params(params))) if fn is not None else []

    def needs_for(self, params: dict[str, Any] | None = None) -> tuple[Need, ...]:
        """Features this metric reads with these params (``compute.needs_for`` when the network is a
        parameter, e.g. IS* on CUB reads TISE's bird classifier); else the registered ``needs``."""
        fn = getattr(self.fn, "needs_for", None)
        return tuple(fn(self.resolve_params(params))) if fn is not None else self.needs

    def requires(self, records: list, evalset: Any, params: dict[str, Any] | None = None) -> str | None:
        """Why this metric cannot run on ``records`` (one subset of ``evalset``); None when it can.

        Declared by the metric as ``compute.requires(records, evalset, params)`` (see :func:`records_with`,
        :func:`reference_images`, :func:`reference_images_or_stats`); a metric that declares nothing but reads
        reference features needs reference images. Checked by the plan before any backbone is built."""
        fn = getattr(self.fn, "requires", None)
        if fn is None and any(n.role == "ref" for n in self.needs_for(params)):
            fn = reference_images
        return fn(records, evalset, self.resolve_params(params)) if fn is not None else None

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


def records_with(*fields: str, any_of: bool = False) -> Callable[..., str | None]:
    """A ``compute.requires``: some record of the subset carries every one of ``fields`` (``any_of``: one)."""
    why = "records carry no " + ("/" if any_of else " + ").join(repr(f) for f in fields)
    test = any if any_of else all

    def requires(records: list, evalset: Any = None, params: dict[str, Any] | None = None) -> str | None:
        return None if any(test(getattr(r, f, None) for f in fields) for r in records) else why

    return requires


def reference_images(records: list, evalset: Any = None, params: dict[str, Any] | None = None) -> str | None:
    """A ``compute.requires``: some record has a ``reference`` image (reference statistics cannot serve)."""
    if any(r.reference for r in records):
        return None
    return "records carry no 'reference' images (reference_stats cannot replace them for this metric)"


def reference_images_or_stats(records: list, evalset: Any = None, params: dict[str, Any] | None = None) -> str | None:
    """A ``compute.requires``: reference images or the eval set's reference statistics (mean, covariance)."""
    if getattr(evalset, "reference_stats", None) or any(r.reference for r in records):
        return None
    return "no reference images or reference_stats given"


_GENERIC_PARAMS = {"subset": (str, type(None))}  # accepted by every metric (pipeline.resolve_metrics reads it)


def _accepts(hint: Any) -> tuple[type, ...]:
    """Python types a parameter annotated ``hint`` accepts (int where float is declared; never bool for numbers)."""
    if hint is Any:
        return (object,)
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    out: list[type] = []
    for a in args:
        if a is type(None):
            out.append(type(None))
        elif a is float:
            out += [float, int]
        elif typing.get_origin(a) in (list, tuple, dict):
            out.append(typing.get_origin(a))
        elif isinstance(a, type):
            out.append(a)
        else:
            out.append(object)
    return tuple(out)


def resolve_params(params_cls: type | None, given: Mapping[str, Any] | None, metric_id: str) -> dict[str, Any]:
    """``given`` over the defaults of ``params_cls`` (a dataclass; None = a metric without parameters)."""
    given = dict(given or {})
    spec = {f.name: f for f in fields(params_cls)} if params_cls is not None else {}
    hints = typing.get_type_hints(params_cls) if params_cls is not None else {}
    accepted = {**{k: _accepts(h) for k, h in hints.items() if k in spec}, **_GENERIC_PARAMS}
    for key, value in given.items():
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(sorted(spec)) or "none"
            raise ConfigError(
                f"metrics.params.{metric_id}.{key} is not a parameter of {metric_id}.{hint} Its parameters: {valid}."
            )
        ok = accepted[key]
        if not isinstance(value, ok) or (isinstance(value, bool) and bool not in ok and object not in ok):
            want = " or ".join(sorted({t.__name__ for t in ok}))
            raise ConfigError(
                f"metrics.params.{metric_id}.{key}={value!r}: expected {want}, got {type(value).__name__}."
            )
    out = {k: getattr(params_cls(), k) for k in spec} if params_cls is not None else {}
    out.update(given)
    return out


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
    formerly_fraction: bool = False,
    params: type | None = None,
    min_comparable: tuple[MinComparable, ...] | list[MinComparable] = (),
) -> Callable[[Callable], Callable]:
    """Decorator registering ``fn(ctx, params) -> MetricValue`` under ``id``; duplicates are rejected.

    ``unit`` is one of :data:`UNITS` and is written next to every value in ``metrics.json``.
    ``formerly_fraction``: a ``percent`` metric that runs written before units were recorded reported as a
    fraction 0..1 (the leaderboard recognises such old runs instead of ranking 0.27 against 27).
    ``params``: a frozen dataclass of the metric's parameters with their defaults (the config's
    ``metrics.params.<id>`` holds overrides only); ``fn`` receives them resolved, as a dict.
    ``min_comparable``: the sample sizes below which a value is not comparable to published numbers
    (:class:`MinComparable`; a run writes a ``small_n`` warning and the CLI table marks the value).
    """
    if unit not in UNITS:
        raise ValueError(
            f"metric {id!r}: unit={unit!r} is not one of {', '.join(UNITS)} (tise_bench/registry.py UNITS)"
        )

    def deco(fn: Callable) -> Callable:
        if id in _REGISTRY:
            raise ValueError(f"metric id {id!r} registered twice ({_REGISTRY[id].fn.__module__} and {fn.__module__})")
        _REGISTRY[id] = MetricSpec(
            id=id,
            display=display,
            higher_is_better=higher_is_better,
            version=version,
            citation=citation,
            subset=subset,
            needs=tuple(needs),
            fn=fn,
            unit=unit,
            description=description or (fn.__doc__ or "").strip(),
            formerly_fraction=formerly_fraction,
            params=params,
            min_comparable=tuple(min_comparable),
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
