"""TISE's ranking score (RS; Dinh et al. 2022, SPEC §3) over the rows of one leaderboard.

Per metric, over the N rows: rank so the best row gets N and the worst 1 (direction from the metric registry:
FID, O-FID and CA are lower-is-better); ties get the average of the ranks they span. Aspect score = mean rank
of the aspect's metrics (those ranked); RS = sum of aspect scores.

Missing values are never a silent zero. A metric of an aspect that some rows lack is either an error
(``on_missing="error"``, the default) or dropped from the ranking and recorded in ``excluded`` with the reason
(``on_missing="exclude"``). A metric no row has is simply not a column; aspects left with no metric are dropped
and their metrics recorded in ``excluded``. Metrics in no aspect are ranked when every row has them (for the
reader) but never enter RS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from ..errors import ConfigError
from ..registry import all_metrics, display_to_id
from .schema import MetricColumn, Row

OnMissing = Literal["error", "exclude"]


def rank_values(values: Sequence[float], higher_is_better: bool) -> list[float]:
    """Ranks with best = N, worst = 1, ties = the average of the ranks they span (``rankdata`` 'average')."""
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"rank_values needs finite values, got {list(values)}")
    return [float(r) for r in rankdata(arr if higher_is_better else -arr, method="average")]


def resolve_metric_ids(names: Sequence[str], where: str) -> list[str]:
    """Display names or ids -> registry ids (order kept); an unknown name is a :class:`ConfigError`."""
    known = display_to_id()
    lower = {k.lower(): v for k, v in known.items()}
    out: list[str] = []
    for n in names:
        mid = known.get(str(n)) or lower.get(str(n).lower())
        if mid is None:
            raise ConfigError(
                f"{where}: unknown metric {n!r}. Known display names and ids: {', '.join(sorted(known))}."
            )
        if mid not in out:
            out.append(mid)
    return out


def metric_columns(metric_ids: Sequence[str]) -> list[MetricColumn]:
    """Registry metadata (display name, direction) for each id; an id not in the registry is an error."""
    specs = all_metrics()
    unknown = [m for m in metric_ids if m not in specs]
    if unknown:
        raise ConfigError(
            f"metric(s) {unknown} are not in the metric registry, so their direction is unknown. "
            f"Known ids: {', '.join(sorted(specs))}. Select known ones with leaderboard.metrics=[...]."
        )
    return [{"id": m, "display": specs[m].display, "higher_is_better": specs[m].higher_is_better} for m in metric_ids]


@dataclass
class Ranking:
    """The result of :func:`ranking_score`: ranked rows (sorted by RS, best first) and what was left out."""

    rows: list[Row]
    aspects: dict[str, list[str]]  # the aspects that scored, restricted to the metrics that were ranked
    excluded: dict[str, str] = field(default_factory=dict)  # metric id -> reason


def _missing(rows: Sequence[Row], mid: str) -> list[str]:
    return [r["model"] for r in rows if r.get("values", {}).get(mid) is None]


def ranking_score(
    rows: Sequence[Row],
    metrics: Sequence[str] | Sequence[MetricColumn],
    aspects: Mapping[str, Sequence[str]],
    on_missing: OnMissing = "error",
) -> Ranking:
    """Rank ``rows`` on ``metrics`` and score them by ``aspects``; returns new rows sorted by RS (desc).

    ``metrics`` are the table's metric ids (or :class:`MetricColumn` dicts); directions always come from the
    registry. ``aspects`` map an aspect name to metric ids; an aspect metric not among ``metrics`` or absent
    from every row does not count. Rows keep their other keys (``ci``, ``source`` ...).
    """
    if on_missing not in ("error", "exclude"):
        raise ConfigError(f"leaderboard.on_missing must be 'error' or 'exclude', got {on_missing!r}.")
    ids = [m["id"] if isinstance(m, Mapping) else m for m in metrics]
    direction = {c["id"]: c["higher_is_better"] for c in metric_columns(ids)}
    metric_columns([m for ms in aspects.values() for m in ms])  # aspect metrics must be registered too
    out: list[Row] = [{**r, "ranks": {}, "aspects": {}} for r in rows]
    excluded: dict[str, str] = {}
    in_aspect = {m for ms in aspects.values() for m in ms}

    rankable: list[str] = []
    incomplete: dict[str, list[str]] = {}
    for mid in dict.fromkeys([*ids, *[m for ms in aspects.values() for m in ms]]):
        missing = _missing(out, mid) if mid in direction else [r["model"] for r in out]
        if mid not in direction:
            if mid in in_aspect:
                excluded[mid] = "not among the leaderboard's metrics (leaderboard.metrics)"
        elif len(missing) == len(out):
            if mid in in_aspect:
                excluded[mid] = "no row has a value"
        elif missing:
            incomplete[mid] = missing
        else:
            rankable.append(mid)

    for mid, missing in incomplete.items():
        if mid not in in_aspect:
            continue  # shown in the table, never ranked, no effect on RS
        if on_missing == "error":
            raise ConfigError(
                f"metric {mid!r} is missing for {len(missing)} row(s): {missing}. Evaluate it for "
                "them, or set leaderboard.on_missing=exclude to rank without it, or drop it with "
                "leaderboard.metrics=[...]."
            )
        excluded[mid] = f"missing for {', '.join(missing)} (on_missing=exclude)"

    for mid in rankable:
        ranks = rank_values([r["values"][mid] for r in out], direction[mid])  # type: ignore[misc]
        for r, rk in zip(out, ranks):
            r["ranks"][mid] = rk

    used: dict[str, list[str]] = {}
    for name, ms in aspects.items():
        kept = [m for m in ms if m in rankable]
        if kept:
            used[name] = kept
            continue
        for m in ms:
            excluded[m] = f"{excluded.get(m, 'not ranked')}; aspect {name!r} dropped from RS (no ranked metric)"
    if not used:
        raise ConfigError(
            f"no aspect has a ranked metric, so RS is undefined. Aspects: {dict(aspects)}; "
            f"ranked metrics: {rankable or 'none'}. Check leaderboard.aspects / leaderboard.metrics."
        )
    for r in out:
        r["aspects"] = {name: float(np.mean([r["ranks"][m] for m in ms])) for name, ms in used.items()}
        r["rs"] = float(sum(r["aspects"].values()))
    out.sort(key=lambda r: (-r["rs"], r["model"]))
    return Ranking(rows=out, aspects=used, excluded=excluded)
