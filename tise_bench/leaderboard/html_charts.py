"""Inline-SVG charts for the HTML leaderboard: pure functions from plain data to an ``<svg>`` string.

No plotting library and nothing fetched at view time: every chart is hand-written SVG, so the page stays
one self-contained file. All text is escaped here; callers pass raw strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
EXTERNAL = "#9a9a9a"  # bars of published baselines (extra rows)


def fmt(v: float | None) -> str:
    """A compact number: 4 significant digits, no exponent for ordinary metric magnitudes."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e6 or a < 1e-3:
        return f"{v:.3g}"
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.1f}" if a >= 1000 else f"{v:.4g}" if a >= 1 else f"{v:.3g}"


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _log_range(nums: Sequence[float]) -> tuple[float, float]:
    """Whole decades around positive ``nums`` (at least one decade)."""
    lo = 10.0 ** math.floor(math.log10(min(nums)))
    hi = 10.0 ** math.ceil(math.log10(max(nums)))
    return (lo, hi) if hi > lo else (lo, lo * 10)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades from ``lo`` to ``hi``; with 2 and 5 between them when the range spans at most two decades."""
    k0, k1 = round(math.log10(lo)), round(math.log10(hi))
    steps = (1, 2, 5) if k1 - k0 <= 2 else (1,)
    return [m * 10.0**k for k in range(k0, k1 + 1) for m in steps if m * 10.0**k <= hi * (1 + 1e-9)]


def log_axis_possible(values: Sequence[float | None]) -> bool:
    """A log axis shows these values only if every finite one is > 0 (and there is one)."""
    nums = [v for v in values if v is not None and math.isfinite(v)]
    return bool(nums) and min(nums) > 0


def _text(
    x: float, y: float, s: object, *, anchor: str = "start", size: int = 11, cls: str = "", extra: str = ""
) -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{c}{extra}>{_e(s)}</text>'


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float | None, tuple[float, float] | None, bool]],
    width: int = 380,
    log: bool = False,
) -> str:
    """Horizontal bars, one per ``(label, value, ci or None, external)``, CI drawn as an error bar.

    ``log=True`` (FID-like distances, whose good values are orders of magnitude below the bad ones): a log10
    axis over whole decades, bars from its left end; refused (linear axis) unless every value and bound is > 0.
    """
    row_h, left, right, top = 20, 130, 56, 26
    height = top + row_h * len(items) + 24
    nums = [v for _, v, _, _ in items if v is not None and math.isfinite(v)]
    nums += [b for _, v, ci, _ in items if ci and v is not None for b in ci if math.isfinite(b)]
    log = log and log_axis_possible(nums)
    span = width - left - right
    if log:
        lo, hi = _log_range(nums)
        ticks = _log_ticks(lo, hi)
        x = lambda v: left + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * span  # noqa: E731
        base = lo
        title += " · log scale"
    else:
        lo, hi = (min(nums + [0.0]), max(nums + [0.0])) if nums else (0.0, 1.0)
        if hi == lo:
            hi = lo + 1.0
        ticks = _nice_ticks(lo, hi)
        x = lambda v: left + (v - lo) / (hi - lo) * span  # noqa: E731
        base = 0.0
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}" data-scale="{"log" if log else "linear"}">',
        _text(6, 16, title, size=13, cls="ttl"),
    ]
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" y1="{top - 4}" x2="{x(t):.1f}" y2="{height - 20}" class="grid"/>')
        out.append(_text(x(t), height - 6, fmt(t), anchor="middle", size=9, cls="mut"))
    for i, (label, v, ci, ext) in enumerate(items):
        y = top + i * row_h
        short = label if len(label) <= 20 else label[:19] + "…"
        out.append(_text(left - 6, y + 14, short, anchor="end", extra=f' data-full="{_e(label)}"'))
        if v is None or not math.isfinite(v):
            out.append(_text(left + 4, y + 14, "n/a", cls="mut"))
            continue
        x0, x1 = sorted((x(base), x(v)))
        color = EXTERNAL if ext else PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" height="{row_h - 6}" '
            f'fill="{color}"><title>{_e(label)}: {_e(fmt(v))}</title></rect>'
        )
        end = x(v)
        if ci:
            a, b = x(ci[0]), x(ci[1])
            ym = y + row_h / 2
            out.append(f'<path d="M{a:.1f},{ym - 5}v10M{a:.1f},{ym}H{b:.1f}M{b:.1f},{ym - 5}v10" class="err"/>')
            end = max(end, a, b)
        out.append(_text(min(end + 4, width - right + 4), y + 14, fmt(v), size=10))
    out.append("</svg>")
    return "".join(out)


def _rgb(p: float) -> tuple[int, int, int]:
    """White -> dark blue as probability goes 0 -> 1."""
    t = max(0.0, min(1.0, p)) ** 0.7
    r, g, b = (round(255 + (c - 255) * t) for c in (8, 48, 107))
    return r, g, b


def _color(p: float) -> str:
    return "rgb({},{},{})".format(*_rgb(p))


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as 0..255 components."""

    def lin(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG 2 contrast ratio (1 .. 21) of two sRGB colours."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def label_colour(background: Sequence[float]) -> str:
    """Black or white, whichever contrasts more with ``background``: at least √21 ≈ 4.58 for any colour, above
    WCAG's 4.5 for normal text."""
    black, white = (0, 0, 0), (255, 255, 255)
    return "#000000" if contrast_ratio(background, black) >= contrast_ratio(background, white) else "#ffffff"


def heatmap(models: Sequence[str], probs: Sequence[Sequence[float]]) -> str:
    """Models x places; ``probs[i][r-1]`` = P(model i has rank r), rank N = best, shown best first. Each label's
    colour is computed from its cell's (:func:`label_colour`)."""
    n = max((len(p) for p in probs), default=0)
    cell, left, top = 46, 140, 40
    width, height = left + cell * n + 10, top + cell * len(models) + 8
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="rank probabilities">'
    ]
    for j in range(n):
        out.append(_text(left + cell * j + cell / 2, top - 10, f"#{j + 1}", anchor="middle", size=11))
    out.append(_text(left - 6, top - 10, "place →", anchor="end", size=10, cls="mut"))
    for i, (m, p) in enumerate(zip(models, probs)):
        y = top + cell * i
        out.append(_text(left - 6, y + cell / 2 + 4, m if len(m) <= 20 else m[:19] + "…", anchor="end"))
        for j in range(n):
            r = n - j  # place j+1 (1 = best) is rank N - j
            v = float(p[r - 1]) if r - 1 < len(p) else 0.0
            bg = _rgb(v)
            out.append(
                f'<rect x="{left + cell * j}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{_color(v)}"><title>{_e(m)}: P(place {j + 1}) = {v:.3f}</title></rect>'
            )
            out.append(
                _text(
                    left + cell * j + cell / 2 - 1,
                    y + cell / 2 + 3,
                    f"{v:.2f}",
                    anchor="middle",
                    size=10,
                    cls="cell",
                    extra=f' fill="{label_colour(bg)}"',
                )
            )
    out.append("</svg>")
    return "".join(out)


def histogram(values: Sequence[float], title: str, bins: int = 20, width: int = 520, height: int = 220) -> str:
    """Counts of ``values`` in equal bins over their range (at least 0.1 wide), mean marked."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 0.1:
        mid = (hi + lo) / 2
        lo, hi = mid - 0.05, mid + 0.05
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    left, right, top, bottom = 40, 12, 26, 30
    pw, ph = width - left - right, height - top - bottom
    cmax = max(counts + [1])
    x = lambda v: left + (v - lo) / (hi - lo) * pw  # noqa: E731
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">',
        _text(6, 16, title, size=13, cls="ttl"),
    ]
    for t in _nice_ticks(0, cmax, 4):
        yy = top + ph - t / cmax * ph
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" class="grid"/>')
        out.append(_text(left - 4, yy + 3, fmt(t), anchor="end", size=9, cls="mut"))
    bw = pw / bins
    for i, c in enumerate(counts):
        h = c / cmax * ph
        out.append(
            f'<rect x="{left + i * bw + 0.5:.1f}" y="{top + ph - h:.1f}" width="{bw - 1:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{c}</title></rect>'
        )
    for t in _nice_ticks(lo, hi, 5):
        out.append(_text(x(t), height - 12, f"{t:.2f}", anchor="middle", size=9, cls="mut"))
    if vals:
        mean = sum(vals) / len(vals)
        out.append(f'<line x1="{x(mean):.1f}" y1="{top}" x2="{x(mean):.1f}" y2="{top + ph}" class="mean"/>')
        out.append(_text(x(mean) + 4, top + 10, f"mean {mean:.3f}", size=10))
    out.append("</svg>")
    return "".join(out)


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    title: str,
    width: int = 900,
    height: int = 260,
) -> str:
    """Vertical bars: one group per ``groups`` entry, one bar (and legend entry) per series."""
    left, right, top, bottom = 44, 12, 30, 44
    pw, ph = width - left - right, height - top - bottom
    vals = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    hi = max(vals + [1e-9])
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">',
        _text(6, 16, title, size=13, cls="ttl"),
    ]
    for t in _nice_ticks(0, hi, 4):
        yy = top + ph - t / hi * ph
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" class="grid"/>')
        out.append(_text(left - 4, yy + 3, fmt(t), anchor="end", size=9, cls="mut"))
    gw = pw / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for g, name in enumerate(groups):
        out.append(_text(left + gw * g + gw / 2, top + ph + 14, name, anchor="middle", size=11))
        for s, (label, vs) in enumerate(series):
            v = vs[g] if g < len(vs) else None
            if v is None or not math.isfinite(v):
                continue
            h = v / hi * ph
            out.append(
                f'<rect x="{left + gw * g + gw * 0.1 + s * bw:.1f}" y="{top + ph - h:.1f}" '
                f'width="{max(bw - 1, 1):.1f}" height="{max(h, 0):.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{_e(label)} · {_e(name)}: {_e(fmt(v))}</title></rect>"
            )
    lx: float = left
    for s, (label, _) in enumerate(series):
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>')
        short = label if len(label) <= 18 else label[:17] + "…"
        out.append(_text(lx + 14, height - 5, short, size=10))
        lx += 24 + 6.5 * len(short)
    out.append("</svg>")
    return "".join(out)


def line_plot(
    title: str,
    points: Sequence[tuple[float, float | None, tuple[float, float] | None]],
    color: str = PALETTE[0],
    width: int = 300,
    height: int = 190,
    log: bool = False,
) -> str:
    """``(step, value or None, ci or None)``: a polyline with markers and a shaded CI band; missing or
    non-finite values are skipped, points are drawn in step order. ``log=True``: a log10 value axis (as in
    :func:`bar_chart`, only when every value and bound is > 0)."""
    pts: list[tuple[float, float, tuple[float, float] | None]] = sorted(
        ((s, v, c) for s, v, c in points if v is not None and math.isfinite(v)), key=lambda p: p[0]
    )
    left, right, top, bottom = 48, 22, 26, 28
    pw, ph = width - left - right, height - top - bottom
    ys = [p[1] for p in pts] + [b for p in pts if p[2] for b in p[2]]
    xs = [p[0] for p in pts]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    log = log and log_axis_possible(ys)
    if log:
        y0, y1 = _log_range(ys)
        yticks = _log_ticks(y0, y1)
        Y = lambda v: top + ph - (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * ph  # noqa: E731
        title += " · log scale"
    else:
        y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if y1 == y0:
            y0, y1 = y0 - 1, y1 + 1
        pad = (y1 - y0) * 0.08
        y0, y1 = y0 - pad, y1 + pad
        yticks = _nice_ticks(y0, y1, 4)
        Y = lambda v: top + ph - (v - y0) / (y1 - y0) * ph  # noqa: E731
    X = lambda v: left + (v - x0) / (x1 - x0) * pw  # noqa: E731
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}" data-scale="{"log" if log else "linear"}">',
        _text(6, 16, title, size=13, cls="ttl"),
    ]
    for t in yticks:
        out.append(f'<line x1="{left}" y1="{Y(t):.1f}" x2="{width - right}" y2="{Y(t):.1f}" class="grid"/>')
        out.append(_text(left - 4, Y(t) + 3, fmt(t), anchor="end", size=9, cls="mut"))
    for t in _nice_ticks(x0, x1, 4):
        out.append(_text(X(t), height - 10, fmt(t), anchor="middle", size=9, cls="mut"))
    band = [(s, v, c) for s, v, c in pts if c]
    if len(band) >= 2:
        d = " ".join(f"{X(s):.1f},{Y(c[1]):.1f}" for s, _, c in band)
        d += " " + " ".join(f"{X(s):.1f},{Y(c[0]):.1f}" for s, _, c in reversed(band))
        out.append(f'<polygon points="{d}" fill="{color}" fill-opacity="0.18"/>')
    if pts:
        line = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v, _ in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
    for s, v, _ in pts:
        out.append(
            f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="3" fill="{color}">'
            f"<title>step {_e(fmt(s))}: {_e(fmt(v))}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)
