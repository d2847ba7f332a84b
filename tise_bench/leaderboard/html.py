"""Self-contained HTML leaderboard: one file, inline CSS/SVG/JS, images as data URIs, no network at view time.

``render_html(lb)`` reads only the :class:`~.schema.Leaderboard` structure; every section whose data is
absent is replaced by a one-line note. ``build_drilldown`` (in :mod:`.html_drilldown`) makes the optional
per-prompt section from one run's folder and the feature cache.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from . import html_charts as ch
from .comparable import comparability_notes, published_note, registry_unit
from .html_drilldown import build_drilldown
from .schema import Leaderboard, MetricColumn
from .tables import best_rows, interval, interval_note

__all__ = ["render_html", "build_drilldown"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1220px;
 color:#222;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta,.mut,.note{color:#666}.note{font-style:italic}
.banner{background:#b00020;color:#fff;padding:10px 14px;border-radius:4px;font-weight:600;margin:10px 0}
.scroll{overflow-x:auto}
table.lb{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.lb{font-size:13px}table.lb th,table.lb td{padding:3px 7px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
table.lb th{background:#f4f5f7;cursor:pointer;user-select:none}table.lb td.m,table.lb th.m{text-align:left}
table.lb td.best{background:#e3f4e1;font-weight:700}tr.ext td{color:#555;background:#fafafa}
tr.ext td.m::after{content:" (published)";font-size:11px;color:#888}
ul.notes{color:#555;font-size:13px;padding-left:18px}ul.notes li.mixed{color:#b00020;font-weight:600}
.ci{display:block;color:#666;font-size:10px;line-height:1.1;font-weight:400}
.grid-charts{display:flex;flex-wrap:wrap;gap:10px}
svg.chart{background:#fff;border:1px solid #eee;border-radius:4px}
svg text{font-family:system-ui,sans-serif}svg text:not([fill]){fill:#222}svg text.mut{fill:#777}
svg text.ttl{font-weight:600}
svg .grid{stroke:#eee}svg .err{stroke:#222;stroke-width:1.3;fill:none}svg .mean{stroke:#e15759;stroke-dasharray:4 3}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.card{border:1px solid #e2e2e2;border-radius:6px;padding:8px;font-size:12px}
.card.changed{border:2px solid #b00020}.card.changed .note{color:#b00020;font-weight:600}
.card svg{display:block;margin:0 auto 6px;background:#f0f0f0;width:100%;max-width:200px;height:auto}.card .cap{font-weight:600;margin-bottom:4px}
.card table{width:100%;border-collapse:collapse}.card td{padding:1px 2px}.card td+td{text-align:right}
.box-label{font-size:9px;fill:#fff;stroke:#000;stroke-width:2.2px;paint-order:stroke}
"""

_JS = """
(function(){var t=document.querySelector('table.lb');if(!t||!t.tBodies.length)return;
var hs=t.tHead.rows[0].cells;for(var i=0;i<hs.length;i++){(function(c,th){var asc=false;
th.addEventListener('click',function(){var b=t.tBodies[0],rs=Array.prototype.slice.call(b.rows);asc=!asc;
rs.sort(function(x,y){var a=x.cells[c].getAttribute('data-v'),z=y.cells[c].getAttribute('data-v');
var fa=parseFloat(a),fz=parseFloat(z);if(isNaN(fa)&&isNaN(fz))return asc?String(a).localeCompare(z):String(z).localeCompare(a);
if(isNaN(fa))return 1;if(isNaN(fz))return -1;return asc?fa-fz:fz-fa;});
rs.forEach(function(r){b.appendChild(r);});});})(i,hs[i]);}})();
"""


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _random_weights(lb: Leaderboard) -> bool:
    if lb.get("random_weights"):
        return True
    return any(r.get("random_weights") or "random" in str(r.get("note", "")).lower() for r in lb.get("rows", []))


def log_scale(metric_id: str) -> bool:
    """FID-like metrics (unit ``distance`` in the registry: lower is better, unbounded above) are plotted on a
    log axis: the good models' values sit orders of magnitude below the bad ones'."""
    return registry_unit(metric_id) == "distance"


def _has_intervals(lb: Leaderboard) -> bool:
    return any(interval(r, c["id"]) for r in lb.get("rows", []) for c in lb.get("metrics", []))


def _table(lb: Leaderboard) -> str:
    rows, cols = lb.get("rows", []), lb.get("metrics", [])
    if not rows:
        return _note("No rows: no run results were found.")
    head = ['<th data-col>#</th><th class="m">Model</th>']
    head += [f'<th title="{_e(c["id"])}">{_e(c["display"])} {"↑" if c["higher_is_better"] else "↓"}</th>' for c in cols]
    head.append('<th title="ranking score: sum of aspect scores">RS ↑</th>')
    best = {c["id"]: best_rows([r.get("values", {}).get(c["id"]) for r in rows], c["higher_is_better"]) for c in cols}
    best_rs = best_rows([r.get("rs") for r in rows], True)
    body = []
    for i, r in enumerate(rows, 1):
        model = str(r.get("model", "?"))
        proto = f' title="published, protocol {_e(r.get("protocol") or "tise-paper")}"' if r.get("external") else ""
        cells = [f'<td data-v="{i}">{i}</td><td class="m" data-v="{_e(model)}"{proto}>{_e(model)}</td>']
        for c in cols:
            v = _num(r.get("values", {}).get(c["id"]))
            ci = interval(r, c["id"])
            cls = ' class="best"' if i - 1 in best[c["id"]] else ""
            txt = _e(ch.fmt(v))
            if v is not None and ci:
                txt += f'<span class="ci">[{_e(ch.fmt(ci[0]))}, {_e(ch.fmt(ci[1]))}]</span>'
            cells.append(f'<td{cls} data-v="{"" if v is None else v}">{txt}</td>')
        rs = _num(r.get("rs"))
        cls = ' class="best"' if i - 1 in best_rs else ""
        cells.append(f'<td{cls} data-v="{"" if rs is None else rs}">{_e(ch.fmt(rs))}</td>')
        body.append(f"<tr{' class=ext' if r.get('external') else ''}>{''.join(cells)}</tr>")
    foot = (
        "Highlighted: the one best value of a column, compared unrounded (none where the best is tied exactly); "
        "click a header to sort."
    )
    shown = [c["id"] for c in cols if any(interval(r, c["id"]) for r in rows)]
    ci_note = interval_note(lb, shown, "[lo, hi] under a value")
    if ci_note:
        foot += " " + ci_note
    out = (
        f'<div class="scroll"><table class="lb"><thead><tr>{"".join(head)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div><p class="mut">{_e(foot)}</p>'
    )
    notes = [n for n in [published_note(lb, "Grey rows:"), *comparability_notes(lb)] if n]
    if notes:
        out += (
            '<ul class="notes">'
            + "".join(f"<li{' class=mixed' if n.startswith('MIXED') else ''}>{_e(n)}</li>" for n in notes)
            + "</ul>"
        )
    excluded = lb.get("excluded") or {}
    if excluded:
        out += "<p class=mut>Not ranked: " + "; ".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in excluded.items())
        out += "</p>"
    return out


def _bars(lb: Leaderboard) -> str:
    rows, charts = lb.get("rows", []), []
    for c in lb.get("metrics", []):
        items = []
        for r in rows:
            items.append(
                (
                    str(r.get("model", "?")),
                    _num(r.get("values", {}).get(c["id"])),
                    interval(r, c["id"]),
                    bool(r.get("external")),
                )
            )
        if any(v is not None for _, v, _, _ in items):
            arrow = "higher is better" if c["higher_is_better"] else "lower is better"
            charts.append(ch.bar_chart(f"{c['display']} ({arrow})", items, log=log_scale(c["id"])))
    if not charts:
        return _note("No metric values to plot.")
    whiskers = (
        ""
        if _has_intervals(lb)
        else ('<p class="mut">No bootstrap intervals: the uncertainty pass was not run (leaderboard.bootstrap=N).</p>')
    )
    return f'<div class="grid-charts">{"".join(charts)}</div>{whiskers}'


def _bars_title(lb: Leaderboard) -> str:
    """The heading says error bars only when some bar has one."""
    if not _has_intervals(lb):
        return "Metric values"
    level = _num((lb.get("bootstrap") or {}).get("level")) or 0.95
    return f"Metric values (error bars: {100 * level:g}% bootstrap interval)"


def _rank_probs(lb: Leaderboard) -> str:
    rp = lb.get("rank_probabilities")
    if not rp:
        return _note("No rank probabilities (the bootstrap uncertainty pass was not run).")
    models = [str(r["model"]) for r in lb.get("rows", []) if r.get("model") in rp]
    models += [m for m in rp if m not in models]
    probs = [[_num(p) or 0.0 for p in rp[m]] for m in models]
    return (
        ch.heatmap(models, probs) + '<p class="mut">P(model finishes in place k) over bootstrap '
        "resamples; place #1 = best (rank N in the schema's convention).</p>"
    )


def _tau(lb: Leaderboard) -> str:
    tau = [v for v in (lb.get("kendall_tau") or []) if _num(v) is not None]
    if not tau:
        why = (lb.get("bootstrap") or {}).get("kendall_tau_undefined_why")
        return _note(
            f"No Kendall-τ distribution: {why}."
            if why
            else "No Kendall-τ distribution (the bootstrap uncertainty pass was not run)."
        )
    return (
        ch.histogram(tau, f"Kendall τ(bootstrap ranking, point ranking), {len(tau)} resamples")
        + f'<p class="mut">{_e(tau_explained(lb, len(tau)))} Near 1: the ranking is stable under resampling of the prompts.</p>'
    )


def tau_explained(lb: Leaderboard, n_tau: int) -> str:
    """How many resamples the τ histogram holds, and why not ``leaderboard.bootstrap``'s N."""
    b = lb.get("bootstrap") or {}
    n, n_rank = int(b.get("n", n_tau)), int(b.get("n_rank", n_tau))
    names = {c["id"]: c["display"] for c in lb.get("metrics", [])}
    parts = [f"τ over {n_tau} of {n_rank} RS resamples."]
    undefined = int(b.get("kendall_tau_undefined", 0))
    if undefined:
        parts.append(f"In the other {undefined}, {b.get('kendall_tau_undefined_why') or 'a ranking was constant'}.")
    if n_rank < n:
        limited = [names.get(m, m) for m in b.get("n_rank_limited_by") or []]
        who = f"{', '.join(limited)} {'has' if len(limited) == 1 else 'have'}" if limited else "some ranked metric has"
        parts.append(
            f"RS was resampled {n_rank} times, not leaderboard.bootstrap={n}: {who} only {n_rank} replicates "
            "(bootstrap.replicates_features)."
        )
    return " ".join(parts)


def _aspects(lb: Leaderboard) -> str:
    rows = [r for r in lb.get("rows", []) if r.get("aspects")]
    if not rows:
        return _note("No aspect scores.")
    names = list(lb.get("aspects") or {}) or sorted({a for r in rows for a in r["aspects"]})
    series = [(str(r.get("model", "?")), [_num(r["aspects"].get(a)) for a in names]) for r in rows]
    return (
        ch.grouped_bars(names, series, "Aspect scores (mean rank of the aspect's metrics; higher = better)")
        + '<p class="mut">'
        + _e("; ".join(f"{a}: {', '.join(m)}" for a, m in (lb.get("aspects") or {}).items()))
        + "</p>"
    )


def _steps(lb: Leaderboard) -> str:
    stepped = [(step, r) for r in lb.get("rows", []) if (step := _num(r.get("step"))) is not None]
    if len(stepped) < 2:
        return _note("No checkpoint sweep (rows carry no training step).")
    cols: list[MetricColumn] = list(lb.get("metrics", []))
    charts = []
    for k, c in enumerate(cols):
        pts: list[tuple[float, float | None, tuple[float, float] | None]] = []
        for step, r in stepped:
            pts.append((step, _num(r.get("values", {}).get(c["id"])), interval(r, c["id"])))
        if sum(p[1] is not None for p in pts) >= 1:
            arrow = "↑" if c["higher_is_better"] else "↓"
            colour = ch.PALETTE[k % len(ch.PALETTE)]
            charts.append(ch.line_plot(f"{c['display']} {arrow} vs step", pts, colour, log=log_scale(c["id"])))
    rs: list[tuple[float, float | None, tuple[float, float] | None]] = [
        (step, _num(r.get("rs")), None) for step, r in stepped
    ]
    if any(v is not None for _, v, _ in rs):
        charts.append(ch.line_plot("RS ↑ vs step", rs, "#333"))
    return f'<div class="grid-charts">{"".join(charts)}</div>'


def _card(s: dict[str, Any], displays: dict[str, str]) -> str:
    w, h = int(s.get("width") or 160), int(s.get("height") or 160)
    thumb = str(s.get("thumbnail") or "")
    parts = [f'<svg class="thumb" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    if thumb.startswith("data:image/"):  # only inline images: never a URL or a script URI
        parts.append(f'<image href="{_e(thumb)}" x="0" y="0" width="{w}" height="{h}"/>')
    else:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" font-size="11" fill="#777">no image</text>')
    for b in s.get("boxes") or []:
        x1, y1, x2, y2 = (_num(v) or 0.0 for v in b[:4])
        score, name = _num(b[4]) or 0.0, str(b[5]) if len(b) > 5 else "?"
        parts.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 1):.1f}" height="{max(y2 - y1, 1):.1f}" '
            f'fill="none" stroke="#ffd400" stroke-width="1.5"><title>{_e(name)} {score:.2f}</title></rect>'
        )
        right = x1 > w * 0.55  # anchor labels of right-hand boxes at their right edge so they stay visible
        parts.append(
            f'<text class="box-label" x="{(x2 - 2 if right else x1 + 2):.1f}" y="{max(y1 + 10, 10):.1f}" '
            f'text-anchor="{"end" if right else "start"}">{_e(name)} {score:.2f}</text>'
        )
    parts.append("</svg>")
    vals = "".join(
        f"<tr><td>{_e(displays.get(k, k))}</td><td>{_e(ch.fmt(_num(v)))}</td></tr>"
        for k, v in (s.get("metrics") or {}).items()
    )
    note = f'<div class="note">{_e(s["note"])}</div>' if s.get("note") else ""
    ident = str(s.get("id", "")) + (f" · k={s['k']}" if s.get("k") else "")
    cls = "card changed" if s.get("changed") else "card"
    return (
        f'<div class="{cls}">{"".join(parts)}<div class="cap">{_e(s.get("caption", ""))}</div>'
        f'<div class="mut">{_e(ident)}</div><table>{vals}</table>{note}</div>'
    )


_AGREEMENT_STATS = (
    ("kendall_tau_b", "Kendall τ-b"),
    ("kendall_tau_c", "Kendall τ-c"),
    ("spearman", "Spearman ρ"),
    ("pairwise_accuracy", "pairwise acc."),
)


def _agreement(lb: Leaderboard) -> str:
    """Agreement of each metric with human ratings (``leaderboard.human``): a table and a τ-b bar chart."""
    ag = lb.get("agreement") or {}
    rows = ag.get("rows") or []
    if not rows:
        return _note("No human ratings given (leaderboard.human=<ratings.csv>).")
    displays = {c["id"]: c["display"] for c in lb.get("metrics", [])}

    def cell(e: dict[str, Any]) -> str:
        v = _num((e or {}).get("value"))
        ci = (e or {}).get("ci")
        if v is None:
            return "n/a"
        lo, hi = (_num(ci[0]), _num(ci[1])) if ci and len(ci) == 2 else (None, None)
        band = f' <span class="mut">[{lo:.3f}, {hi:.3f}]</span>' if lo is not None and hi is not None else ""
        return f"{v:.3f}{band}"

    head = "".join(f"<th>{_e(t)}</th>" for t in ["metric", "n", *(t for _, t in _AGREEMENT_STATS)])
    body = "".join(
        f"<tr><td>{_e(displays.get(r['metric'], r['metric']))}</td><td>{_e(r.get('n', ''))}</td>"
        + "".join(f"<td>{cell(r.get(k) or {})}</td>" for k, _ in _AGREEMENT_STATS)
        + "</tr>"
        for r in rows
    )
    items = []
    for r in rows:
        e = r.get("kendall_tau_b") or {}
        ci = e.get("ci")
        ci_t = (float(ci[0]), float(ci[1])) if ci and len(ci) == 2 and None not in ci else None
        items.append((displays.get(r["metric"], r["metric"]), _num(e.get("value")), ci_t, False))
    level = _e(ag.get("level", "?"))
    caption = (
        f'<p class="mut">{level}-level ratings from {_e(Path(str(ag.get("ratings", "?"))).name)}; '
        f"{_e(ag.get('n_ratings', '?'))} ratings. Intervals ({_e(int(100 * float(ag.get('confidence', 0.95))))}%): "
        f"{_e(ag.get('interval') or 'none')}. Lower-is-better metrics are negated, so positive = agreement.</p>"
    )
    skipped = ag.get("skipped") or {}
    notes = (
        '<ul class="notes">' + "".join(f"<li>{_e(m)}: {_e(w)}</li>" for m, w in skipped.items()) + "</ul>"
        if skipped
        else ""
    )
    return (
        f'{caption}<table class="lb"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f'<div class="grid-charts">{ch.bar_chart("Kendall τ-b with the human ratings", items)}</div>{notes}'
    )


def _drilldown(lb: Leaderboard) -> str:
    dd = lb.get("drilldown") or {}
    samples = dd.get("samples") or []
    if not samples:
        return _note("No per-prompt drill-down in this leaderboard.")
    displays = {c["id"]: c["display"] for c in lb.get("metrics", [])}
    head = f"Model <b>{_e(dd.get('model', '?'))}</b>, first {len(samples)} samples"
    if dd.get("threshold") is not None:
        head += f"; detections with score ≥ {_e(dd['threshold'])}"
    if dd.get("note"):
        head += f". {_e(dd['note'])}"
    cards = "".join(_card(s, displays) for s in samples)
    return f'<p class="mut">{head}</p><div class="cards">{cards}</div>'


def render_html(lb: Leaderboard) -> str:
    """The whole leaderboard page as one self-contained HTML string (no external resources)."""
    data = str(lb.get("data", "?"))
    rw = lb.get("random_weights")  # build.py: list of the models run with random weights; or a bool
    which = f" ({', '.join(map(str, rw))})" if isinstance(rw, list) and rw else ""
    banner = (
        (
            f'<div class="banner">RANDOM-WEIGHTS BACKBONES{_e(which)}: smoke-test numbers only, not comparable '
            "to any paper.</div>"
        )
        if _random_weights(lb)
        else ""
    )
    n_ext = sum(bool(r.get("external")) for r in lb.get("rows", []))
    meta = f"{len(lb.get('rows', []))} rows ({n_ext} published baselines), schema {_e(lb.get('schema_version', '?'))}"
    sections = [
        ("Leaderboard", _table(lb)),
        (_bars_title(lb), _bars(lb)),
        ("Rank probabilities", _rank_probs(lb)),
        ("Ranking stability", _tau(lb)),
        ("Aspects", _aspects(lb)),
        ("Metrics vs training step", _steps(lb)),
        ("Per-prompt drill-down", _drilldown(lb)),
        ("Agreement with human ratings", _agreement(lb)),
    ]
    body = "".join(f'<section id="s{i}"><h2>{_e(t)}</h2>{html}</section>' for i, (t, html) in enumerate(sections))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>tise_bench leaderboard: {_e(data)}</title><style>{_CSS}</style></head><body>"
        f'<h1>tise_bench leaderboard: {_e(data)}</h1><div class="meta">{meta}</div>{banner}{body}'
        f"<script>{_JS}</script></body></html>\n"
    )
