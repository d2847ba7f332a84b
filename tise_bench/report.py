"""Plain-text summary table printed by the CLI."""

from __future__ import annotations

import math

from .results import EvalResult


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}"


FALLBACK_MARK, PROTOCOL_MARK, SMALL_N_MARK = "†", "*", "‡"


def warnings_of(result: EvalResult, metric_id: str, kind: str) -> list[dict]:
    """The ``kind`` entries (``small_n``, ``no_reference``) of a metric's ``warnings`` in ``metrics.json``."""
    return [w for w in (result.meta.get(metric_id) or {}).get("warnings") or [] if w.get("kind") == kind]


def flags(result: EvalResult, metric_id: str) -> tuple[bool, str | None]:
    """(fallback, protocol divergence) of one metric: ``extras['fallback']`` is true when a stand-in network
    was used (e.g. O-IS / O-FID without TISE's object classifier); the divergence is ``meta[id]['protocol']``
    when it is present and not ``"tise"``."""
    mv = result.metrics.get(metric_id)
    fallback = bool(mv is not None and mv.extras.get("fallback"))
    protocol = (result.meta.get(metric_id) or {}).get("protocol")
    return fallback, (str(protocol) if protocol not in (None, "tise") else None)


def _cell(result: EvalResult, metric_id: str) -> str:
    if metric_id not in result.metrics:
        return "-"
    fallback, protocol = flags(result, metric_id)
    marks = (FALLBACK_MARK if fallback else "") + (PROTOCOL_MARK if protocol else "")
    marks += SMALL_N_MARK if warnings_of(result, metric_id, "small_n") else ""
    return _fmt(result.metrics[metric_id].value) + marks


def _span(counts: list) -> str:
    """One count, or the range of the models' counts (``4–8``), in the small-N legend."""
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _legend(results: list[EvalResult], ids: list[str], display: dict[str, str]) -> list[str]:
    fb: list[str] = []
    proto: dict[str, list[str]] = {}
    for r in results:
        for i in ids:
            f, p = flags(r, i)
            if f and display[i] not in fb:
                fb.append(display[i])
            if p:
                proto.setdefault(p, [])
                if display[i] not in proto[p]:
                    proto[p].append(display[i])
    out = []
    if fb:
        out.append(f"{FALLBACK_MARK} fallback network, not TISE's (see 'warning' in metrics.json): {', '.join(fb)}")
    if proto:
        out.append(
            f"{PROTOCOL_MARK} not TISE's protocol ('protocol' in metrics.json; metrics/README.md, "
            f"'TISE protocol vs ours'):"
        )
        out += [f"    {', '.join(names)}: {p}" for p, names in proto.items()]
    used: dict[tuple[str, str, object], list] = {}  # (metric, what, threshold) -> the counts of every model
    for r in results:
        for i in ids:
            for w in warnings_of(r, i, "small_n"):
                used.setdefault((display[i], str(w["what"]), w["threshold"]), []).append(w["used"])
    small = [f"{d} {_span(counts)} {what} < {thr}" for (d, what, thr), counts in used.items()]
    if small:
        out.append(
            f"{SMALL_N_MARK} too few samples to compare with published numbers ('warnings' in metrics.json): "
            + "; ".join(small)
        )
    for r in results:  # one line per model: the same records are missing for every metric of a subset
        lacking = {display[i]: w for i in ids for w in warnings_of(r, i, "no_reference")}
        if lacking:
            counts = sorted({int(w["skipped"]) for w in lacking.values()})
            out.append(
                f"note: {r.model}: {'/'.join(map(str, counts))} left out for want of a 'reference' "
                f"(skipped.no_reference): {', '.join(lacking)}; give every record a 'reference' or data.reference_stats"
            )
    return out


def format_table(results: list[EvalResult]) -> str:
    if not results:
        return "(no results)"
    ids = list(dict.fromkeys(k for r in results for k in r.metrics))
    display = {i: results[0].meta.get(i, {}).get("display", i) for i in ids}
    heads = (
        ["model"]
        + [f"{display[i]}{'↑' if results[0].meta.get(i, {}).get('higher_is_better', True) else '↓'}" for i in ids]
        + ["images", "skipped"]
    )
    rows = []
    for r in results:
        c = r.provenance.get("counts", {})
        skipped = sum(int(c.get(k, 0)) for k in ("missing", "extra", "duplicate", "bad_images", "no_reference"))
        rows.append([r.model] + [_cell(r, i) for i in ids] + [str(c.get("images", "")), str(skipped)])
    widths = [max(len(h), *(len(row[j]) for row in rows)) for j, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(x.rjust(w) if j else x.ljust(w) for j, (x, w) in enumerate(zip(cells, widths)))

    out = [f"data={results[0].data}", line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows]
    out += _legend(results, ids, display)
    if any(r.provenance.get("random_weights") for r in results):
        out.append("!! RANDOM-WEIGHTS BACKBONES: smoke-test numbers only, not comparable to published results !!")
    na = results[0].provenance.get("not_applicable") or {}
    for mid, why in na.items():
        out.append(f"note: {mid} not computed: {why}")
    return "\n".join(out)


def format_result(result: EvalResult, level: float = 0.95) -> str:
    """One result as a compact table (``repr`` / ``print`` of an :class:`EvalResult`): one line per metric with its
    value (and the marks and legend of :func:`format_table`), its ``[lo, hi]`` percentile interval when bootstrap
    replicates were drawn (else ``± std`` when the metric has one), and n."""
    from .leaderboard.uncertainty import percentile_ci

    c = result.provenance.get("counts", {})
    skipped = sum(int(c.get(k, 0)) for k in ("missing", "extra", "duplicate", "bad_images", "no_reference"))
    rows = []
    for mid, mv in result.metrics.items():
        meta = result.meta.get(mid, {})
        head = f"{meta.get('display', mid)}{'↑' if meta.get('higher_is_better', True) else '↓'}"
        spread = ""
        reps = result.replicates.get(mid)
        if reps is not None and len(reps):
            lo, hi = percentile_ci(reps, level)
            spread = f"[{_fmt(lo)}, {_fmt(hi)}]"
        elif mv.std is not None and math.isfinite(mv.std):
            spread = f"± {_fmt(mv.std)}"
        rows.append([mid, head, _cell(result, mid), spread, str(mv.n)])
    heads = ["id", "metric", "value", f"{level:.0%} interval" if result.replicates else "spread", "n"]
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(x.ljust(w) if j < 2 else x.rjust(w) for j, (x, w) in enumerate(zip(cells, widths))).rstrip()

    out = [f"EvalResult(model={result.model}, data={result.data}, images={c.get('images', '?')}, skipped={skipped})"]
    out += [line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows]
    ids = list(result.metrics)
    out += _legend([result], ids, {i: result.meta.get(i, {}).get("display", i) for i in ids})
    if result.provenance.get("random_weights"):
        out.append("!! RANDOM-WEIGHTS BACKBONES: smoke-test numbers only, not comparable to published results !!")
    for mid, why in (result.provenance.get("not_applicable") or {}).items():
        out.append(f"note: {mid} not computed: {why}")
    return "\n".join(out)
