"""Are the rows of one leaderboard column comparable? Checked before ranking, never hoped for.

Per metric column that two or more rows fill, three checks (each a *mix* when it fails):

* **settings** — every run records in ``metrics.json`` the ``comparability`` fields that make its value
  comparable (feature network + weights hash, detector, thresholds, temperature, CLIP-S convention and
  prefix, ...). Two runs whose fields differ (a field one run records and the other lacks counts as differing)
  are a mix. A run written before comparability recording has no fields: it is not refused for that alone, but
  every output says it was not checked.
* **unit** — a metric's unit (``percent``, ``score``, ``distance``, ``count_rmse``; registry ``MetricSpec.unit``)
  must be one scale across the rows. A run without a ``unit`` (written before units were recorded) whose SOA-C /
  SOA-I is ≤ 1 is a fraction (SOA was 0..1 before it became percent like TISE's table); an extra-row CSV column
  of a percent metric whose values are all ≤ 1 is a fraction too.
* **protocol** — runs record ``protocol``: ``tise`` (TISE's protocol followed exactly) or a named divergence;
  extra rows are ``tise-paper`` (TISE's published numbers) unless their CSV says otherwise. ``tise`` and
  ``tise-paper`` are the same protocol; any other two protocols in one column are a mix.

A mix is refused with one :class:`~tise_bench.errors.ConfigError` naming the metric, the rows, the fields and
their values, and the fix; with ``leaderboard.allow_mixed=true`` the column is ranked anyway and the mix is
recorded in ``lb["comparability"]["mixed"]`` and footnoted in every table (Markdown, LaTeX, HTML, JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..registry import all_metrics
from .collect import PAPER_PROTOCOL
from .schema import Leaderboard, Row

TISE_PROTOCOL = "tise"
SAME_AS_TISE = {TISE_PROTOCOL, PAPER_PROTOCOL}  # our exact reproduction of TISE's protocol vs its paper's numbers
FRACTION = "fraction"
_OWN_CHECKS = ("unit", "protocol")  # comparability keys compared by their own check (not twice)
_NOT_RECORDED = "(not recorded)"
PROTOCOLS_EXPLAINED = (
    f"\nProtocols: '{TISE_PROTOCOL}' = TISE's protocol followed exactly (comparable with "
    f"'{PAPER_PROTOCOL}' = the numbers published in TISE's paper); any other is a named divergence "
    "from TISE's protocol (see the metric's 'TISE protocol vs ours' table in the README)."
)


def registry_unit(mid: str) -> str | None:
    """The registry's unit of ``mid`` (``MetricSpec.unit``); ``None`` for an unknown id or a registry without units."""
    spec = all_metrics().get(mid)
    unit = getattr(spec, "unit", None) if spec is not None else None
    return None if unit is None else str(unit)


def _display(mid: str) -> str:
    spec = all_metrics().get(mid)
    return f"{spec.display} ({mid})" if spec is not None and spec.display != mid else mid


def _short(mid: str) -> str:
    spec = all_metrics().get(mid)
    return spec.display if spec is not None else mid


def _canon(v: Any) -> Any:
    """A comparability value as a hashable scalar (lists/dicts, not expected in a flat dict, as JSON text)."""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def _show(v: Any) -> str:
    return v if v == _NOT_RECORDED else repr(v)


def _meta(row: Row, mid: str) -> dict[str, Any]:
    return (row.get("meta") or {}).get(mid) or {}


def _comp(row: Row, mid: str) -> dict[str, Any] | None:
    comp = _meta(row, mid).get("comparability")
    return dict(comp) if isinstance(comp, Mapping) else None


def _run_unit(row: Row, mid: str) -> str | None:
    unit = _meta(row, mid).get("unit")
    if unit is None:
        unit = (_comp(row, mid) or {}).get("unit")
    return None if unit is None else str(unit)


def _run_protocol(row: Row, mid: str) -> str | None:
    if row.get("external"):
        return str(row.get("protocol") or PAPER_PROTOCOL)
    p = _meta(row, mid).get("protocol")
    if p is None:
        p = (_comp(row, mid) or {}).get("protocol")
    return None if p is None else str(p)


def _who(rows: Sequence[Row]) -> str:
    """``run a, run b`` / ``extra row X (paper.csv)`` — the rows of one group, runs first."""
    runs = [r["model"] for r in rows if not r.get("external")]
    parts = [f"run{'s' if len(runs) > 1 else ''} {', '.join(runs)}"] if runs else []
    by_src: dict[str, list[str]] = {}
    for r in rows:
        if r.get("external"):
            by_src.setdefault(str(r.get("source", "?")), []).append(r["model"])
    for src, names in by_src.items():
        parts.append(f"extra row{'s' if len(names) > 1 else ''} {', '.join(names)} ({src})")
    return "; ".join(parts)


def _groups(pairs: Sequence[tuple[Row, Any]]) -> list[tuple[Any, list[Row]]]:
    out: dict[Any, list[Row]] = {}
    for row, value in pairs:
        out.setdefault(value, []).append(row)
    return list(out.items())


def _record(mid: str, kind: str, field: str, groups: list[tuple[Any, list[Row]]], text: str) -> dict[str, Any]:
    return {
        "metric": mid,
        "kind": kind,
        "field": field,
        "values": [{"value": None if v == _NOT_RECORDED else v, "rows": [r["model"] for r in rs]} for v, rs in groups],
        "note": text,
    }


def _check_fields(mid: str, runs: Sequence[Row]) -> list[dict[str, Any]]:
    recorded = [(r, c) for r in runs if (c := _comp(r, mid)) is not None]
    keys = sorted({k for _, c in recorded for k in c} - set(_OWN_CHECKS))
    out = []
    for key in keys:
        groups = _groups([(r, _canon(c.get(key, _NOT_RECORDED))) for r, c in recorded])
        if len(groups) > 1:
            vals = "; ".join(f"{_show(v)} in {_who(rs)}" for v, rs in groups)
            out.append(_record(mid, "settings", key, groups, f"{_display(mid)}: field '{key}' differs: {vals}"))
    return out


def _expected_unit(mid: str, runs: Sequence[Row]) -> str | None:
    unit = registry_unit(mid)
    if unit is not None:
        return unit
    recorded = {u for r in runs if (u := _run_unit(r, mid)) is not None}
    return recorded.pop() if len(recorded) == 1 else None


def _check_unit(mid: str, rows: Sequence[Row]) -> tuple[list[dict[str, Any]], str | None]:
    """A unit mix of column ``mid`` (as a one-element list) and a note when every row is a fraction."""
    runs = [r for r in rows if not r.get("external")]
    expected = _expected_unit(mid, runs)
    formerly_fraction = bool(getattr(all_metrics().get(mid), "formerly_fraction", False))
    pairs: list[tuple[Row, Any]] = []
    legacy: list[Row] = []
    csv_fraction: dict[str, list[float]] = {}
    by_src: dict[str, list[Row]] = {}
    for r in rows:
        if r.get("external"):
            by_src.setdefault(str(r.get("source", "?")), []).append(r)
            continue
        unit = _run_unit(r, mid)
        if unit is None and formerly_fraction and float(r["values"][mid]) <= 1.0:  # type: ignore[arg-type]
            unit = FRACTION
            legacy.append(r)
        pairs.append((r, unit if unit is not None else expected))
    for src, ext in by_src.items():
        vals = [float(r["values"][mid]) for r in ext]  # type: ignore[arg-type]
        fraction = expected == "percent" and all(v <= 1.0 for v in vals)
        if fraction:
            csv_fraction[src] = vals
        pairs += [(r, FRACTION if fraction else expected) for r in ext]
    groups = _groups([(r, u) for r, u in pairs if u is not None])
    if len(groups) <= 1:
        all_fraction = bool(groups) and groups[0][0] == FRACTION and expected == "percent"
        return [], (
            f"{_short(mid)} values are fractions (0..1) in every row, not percent as in TISE's table."
            if all_fraction
            else None
        )
    disp, short = _display(mid), _short(mid)
    text = f"{disp}: unit differs: " + "; ".join(f"'{u}' in {_who(rs)}" for u, rs in groups)
    for src, vals in csv_fraction.items():
        ex = vals[0]
        shown = ", ".join(f"{v:g}" for v in vals[:5]) + (", ..." if len(vals) > 5 else "")
        text += (
            f". Column {short} of {src} looks like a fraction (all values ≤ 1: {shown}) while {short} is a "
            f"percent metric (0..100): multiply the column by 100 (e.g. {short} {ex:g} should be "
            f"{round(ex * 100, 6)})"
        )
    if legacy:
        names = ", ".join(f"{r['model']} ({r.get('source', '?')}: {r['values'][mid]:g})" for r in legacy)
        text += (
            f". {short} of run(s) {names} is ≤ 1 with no 'unit' in metrics.json: the run predates percent "
            "SOA (SOA-C / SOA-I were fractions 0..1, now percent like TISE's table); re-run it"
        )
    return [_record(mid, "unit", "unit", groups, text)], None


def _check_protocol(mid: str, rows: Sequence[Row]) -> list[dict[str, Any]]:
    known = [(r, p) for r in rows if (p := _run_protocol(r, mid)) is not None]
    if len({TISE_PROTOCOL if p in SAME_AS_TISE else p for _, p in known}) <= 1:
        return []
    groups = _groups(known)
    text = f"{_display(mid)}: protocol differs: " + "; ".join(f"{p!r} in {_who(rs)}" for p, rs in groups)
    return [_record(mid, "protocol", "protocol", groups, text)]


def check_comparability(rows: Sequence[Row], metric_ids: Sequence[str], *, allow_mixed: bool = False) -> dict[str, Any]:
    """Check every column of ``metric_ids`` that two or more rows fill; refuse a mix unless ``allow_mixed``.

    Returns what ``lb["comparability"]`` holds: ``allow_mixed``, ``mixed`` (each with ``metric``, ``kind``
    settings|unit|protocol, ``field``, ``values`` [{value, rows}] and ``note``), ``unrecorded`` (run -> metrics
    whose comparability fields its metrics.json lacks), ``protocols`` (metric -> [{protocol, rows}]) and
    ``notes`` (other remarks, e.g. a column of fractions).
    """
    mixed: list[dict[str, Any]] = []
    unrecorded: dict[str, list[str]] = {}
    protocols: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for mid in metric_ids:
        have = [r for r in rows if (r.get("values") or {}).get(mid) is not None]
        if len(have) < 2:
            continue
        runs = [r for r in have if not r.get("external")]
        for r in runs:
            if _comp(r, mid) is None:
                unrecorded.setdefault(r["model"], []).append(mid)
        mixed += _check_fields(mid, runs)
        unit_mix, note = _check_unit(mid, have)
        mixed += unit_mix
        if note:
            notes.append(note)
        mixed += _check_protocol(mid, have)
        protocols[mid] = [
            {"protocol": p, "rows": [r["model"] for r in rs]}
            for p, rs in _groups([(r, _run_protocol(r, mid)) for r in have])
        ]
    if mixed and not allow_mixed:
        involved = {m for x in mixed for v in x["values"] for m in v["rows"]}
        paths = "; ".join(
            f"{r['model']} = {r.get('source', '?')}" for r in rows if r["model"] in involved and not r.get("external")
        )
        raise ConfigError(
            "leaderboard: refusing to rank values that are not comparable:\n"
            + "\n".join(f"  - {x['note']}" for x in mixed)
            + (f"\nRuns: {paths}." if paths else "")
            + (PROTOCOLS_EXPLAINED if any(x["kind"] == "protocol" for x in mixed) else "")
            + "\nFix: re-run the runs with the same settings (or give the extra rows in the runs' unit and "
            "protocol), or drop the metric with leaderboard.metrics=[...], or set leaderboard.allow_mixed=true "
            "to rank anyway (every output then footnotes the mix)."
        )
    return {
        "allow_mixed": bool(allow_mixed),
        "mixed": mixed,
        "unrecorded": unrecorded,
        "protocols": protocols,
        "notes": notes,
    }


def published_note(lb: Leaderboard, mark: str) -> str | None:
    """The † footnote: published baselines with their protocol(s)."""
    ext = [r for r in lb.get("rows", []) if r.get("external")]
    if not ext:
        return None
    groups = _groups([(r, str(r.get("protocol") or PAPER_PROTOCOL)) for r in ext])
    if len(groups) == 1:
        proto = f"{groups[0][0]} protocol"
    else:
        proto = "; ".join(f"{p} protocol: {', '.join(r['model'] for r in rs)}" for p, rs in groups)
    return f"{mark} published ({proto}): extra row, values as reported, not re-evaluated."


def comparability_notes(lb: Leaderboard) -> list[str]:
    """Footnotes of ``lb["comparability"]``: mixes ranked anyway, runs not checked, protocols other than TISE's."""
    comp = lb.get("comparability") or {}
    out: list[str] = []
    for x in comp.get("mixed") or []:
        out.append(f"MIXED (ranked with leaderboard.allow_mixed=true): {x['note']}.")
    if any(x["kind"] == "protocol" for x in comp.get("mixed") or []):
        out.append(PROTOCOLS_EXPLAINED.strip())
    div: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (protocol, rows) -> metrics: one note per group
    for mid, groups in (comp.get("protocols") or {}).items():
        for g in groups:
            if g["protocol"] is not None and g["protocol"] not in SAME_AS_TISE:
                div.setdefault((g["protocol"], tuple(g["rows"])), []).append(_short(mid))
    for (proto, rows), mids in div.items():
        out.append(f"{', '.join(mids)} protocol differs from TISE's: {proto!r} ({', '.join(rows)}).")
    unrec = comp.get("unrecorded") or {}
    if unrec:
        out.append(
            f"{', '.join(unrec)} predate{'s' if len(unrec) == 1 else ''} comparability recording (no "
            "comparability fields in metrics.json): settings not checked against the other rows."
        )
    out += list(comp.get("notes") or [])
    return out
