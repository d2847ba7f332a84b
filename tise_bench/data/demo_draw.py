"""Procedural drawing for the offline demo eval set: backgrounds, iconic COCO objects and scene layouts.

Everything is driven by an explicit ``numpy.random.Generator`` so a scene is byte-identical for a seed.
Scenes are drawn at ``SUPERSAMPLE``× the output size and downsampled (cheap anti-aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in output pixels
RGB = tuple[int, int, int]
SUPERSAMPLE = 2

#: width / height of each class's bounding box
ASPECT: dict[str, float] = {
    "stop sign": 0.625,
    "clock": 1.0,
    "sports ball": 1.0,
    "kite": 0.6,
    "traffic light": 0.4,
    "pizza": 1.0,
    "tv": 1.25,
    "cup": 0.9,
}
#: where an object can sit *inside* a container, as fractions of the container's box
INTERIOR: dict[str, Box] = {"tv": (0.2, 0.12, 0.8, 0.62), "pizza": (0.3, 0.3, 0.7, 0.7), "clock": (0.3, 0.3, 0.7, 0.7)}
#: vertical band (centre y as a fraction of the image) for objects in a counting scene, per background
BAND: dict[str, tuple[float, float]] = {
    "sky": (0.25, 0.45),
    "park": (0.66, 0.76),
    "street": (0.56, 0.66),
    "wall": (0.32, 0.46),
    "table": (0.6, 0.7),
}
BACKGROUNDS = tuple(BAND)


@dataclass(frozen=True)
class Placed:
    """One object of class ``cls`` drawn in ``box``; scenes are lists of these in drawing order."""

    cls: str
    box: Box


def _jc(c: RGB, rng: np.random.Generator, amt: int = 14) -> RGB:
    """Colour ``c`` jittered by up to ±amt per channel."""
    return tuple(int(np.clip(v + rng.integers(-amt, amt + 1), 0, 255)) for v in c)  # type: ignore[return-value]


def _grad(top: RGB, bottom: RGB, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, max(n, 1))[:, None]
    return (1 - t) * np.asarray(top, float) + t * np.asarray(bottom, float)


def background(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """An (size, size, 3) float array: two gradient bands (upper/lower) plus texture noise."""
    spec = {
        "sky": ((90, 150, 225), (185, 215, 245), (80, 150, 60), (60, 120, 45), 0.85, 10.0),
        "park": ((100, 160, 230), (190, 220, 245), (90, 170, 70), (50, 120, 40), 0.5, 14.0),
        "street": ((110, 160, 220), (200, 215, 235), (110, 110, 115), (80, 80, 85), 0.48, 8.0),
        "wall": ((225, 210, 180), (200, 185, 155), (150, 100, 60), (110, 70, 40), 0.72, 6.0),
        "table": ((200, 210, 220), (175, 185, 200), (170, 115, 65), (125, 80, 45), 0.45, 7.0),
    }[kind]
    top, mid, low, bot, horizon, tex = spec
    h = int(size * float(np.clip(horizon + rng.uniform(-0.04, 0.04), 0.1, 0.95)))
    col = np.concatenate([_grad(_jc(top, rng), _jc(mid, rng), h), _grad(_jc(low, rng), _jc(bot, rng), size - h)])
    img = np.repeat(col[:, None, :], size, axis=1)
    noise = rng.normal(0.0, 1.0, (size, size, 1))
    img[h:] += tex * noise[h:]
    img[:h] += 2.0 * noise[:h]
    if kind == "table":  # wood grain
        img[h:] += 8.0 * np.sin(np.arange(size - h) * 0.9 + rng.uniform(0, 6.28))[:, None, None]
    if kind == "street":  # dashed centre line
        y = h + (size - h) // 2
        for x0 in range(int(rng.integers(0, size // 8)), size, size // 4):
            img[y : y + max(size // 64, 1), x0 : x0 + size // 8] = (235, 235, 220)
    return img


def _ell(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: RGB) -> None:
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _stop_sign(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    w, cx = x1 - x0, (x0 + x1) / 2
    d.rectangle((cx - w * 0.05, y0 + w / 2, cx + w * 0.05, y1), fill=_jc((120, 120, 125), rng))
    for r, col in ((w / 2, (245, 245, 245)), (w * 0.44, _jc((200, 20, 25), rng, 20))):
        R = r / math.cos(math.pi / 8)
        d.polygon(
            [
                (
                    cx + R * math.cos(math.pi / 8 + k * math.pi / 4),
                    y0 + w / 2 + R * math.sin(math.pi / 8 + k * math.pi / 4),
                )
                for k in range(8)
            ],
            fill=col,
        )
    d.rectangle((cx - w * 0.3, y0 + w * 0.43, cx + w * 0.3, y0 + w * 0.57), fill=(250, 250, 250))


def _clock(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    r, cx, cy = (x1 - x0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    _ell(d, cx, cy, r, _jc((25, 25, 25), rng, 10))
    _ell(d, cx, cy, r * 0.86, _jc((245, 245, 240), rng, 8))
    for k in range(12):
        a = k * math.pi / 6
        _ell(
            d,
            cx + 0.72 * r * math.cos(a),
            cy + 0.72 * r * math.sin(a),
            r * (0.06 if k % 3 == 0 else 0.03),
            (30, 30, 30),
        )
    for length, width in ((0.45, 0.1), (0.7, 0.05)):
        a = rng.uniform(0, 2 * math.pi)
        d.line(
            (cx, cy, cx + length * r * math.sin(a), cy - length * r * math.cos(a)),
            fill=(20, 20, 20),
            width=max(int(width * r), 1),
        )
    _ell(d, cx, cy, r * 0.07, (180, 20, 20))


def _sports_ball(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    r, cx, cy = (x1 - x0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    _ell(d, cx, cy, r, (90, 40, 10))
    _ell(d, cx, cy, r * 0.94, _jc((235, 120, 30), rng))
    lw = max(int(r * 0.07), 1)
    d.line((cx - r * 0.94, cy, cx + r * 0.94, cy), fill=(40, 20, 10), width=lw)
    d.line((cx, cy - r * 0.94, cx, cy + r * 0.94), fill=(40, 20, 10), width=lw)
    d.arc((cx - 1.6 * r, cy - r, cx - 0.2 * r, cy + r), -60, 60, fill=(40, 20, 10), width=lw)
    d.arc((cx + 0.2 * r, cy - r, cx + 1.6 * r, cy + r), 120, 240, fill=(40, 20, 10), width=lw)


def _kite(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    hd = h * 0.62
    pal = [(220, 40, 50), (250, 200, 30), (40, 90, 210), (150, 50, 180)]
    col = _jc(pal[int(rng.integers(len(pal)))], rng)
    top, bot, left, right = (cx, y0), (cx, y0 + hd), (x0, y0 + hd * 0.35), (x1, y0 + hd * 0.35)
    d.polygon([top, right, bot, left], fill=col)
    d.polygon([top, right, (cx, y0 + hd * 0.35)], fill=tuple(min(v + 50, 255) for v in col))
    lw = max(int(w * 0.03), 1)
    d.line((top, bot), fill=(60, 40, 20), width=lw)
    d.line((left, right), fill=(60, 40, 20), width=lw)
    pts = [(cx + w * 0.12 * math.sin(k * 1.3), y0 + hd + (h - hd) * k / 6) for k in range(7)]
    d.line(pts, fill=(60, 40, 20), width=lw)
    for px, py in pts[2::2]:
        d.polygon(
            [
                (px - w * 0.08, py - w * 0.05),
                (px + w * 0.08, py + w * 0.05),
                (px + w * 0.08, py - w * 0.05),
                (px - w * 0.08, py + w * 0.05),
            ],
            fill=(230, 60, 60),
        )


def _traffic_light(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    d.rectangle((cx - w * 0.1, y0 + h * 0.7, cx + w * 0.1, y1), fill=_jc((90, 90, 95), rng))
    d.rounded_rectangle((x0, y0, x1, y0 + h * 0.76), radius=w * 0.2, fill=_jc((30, 30, 32), rng, 8))
    lit = int(rng.integers(3))
    for k, col in enumerate(((230, 30, 30), (240, 190, 20), (30, 200, 70))):
        shade = col if k == lit else tuple(v // 3 for v in col)
        _ell(d, cx, y0 + h * (0.13 + 0.25 * k), w * 0.33, shade)  # type: ignore[arg-type]


def _pizza(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    r, cx, cy = (x1 - x0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    _ell(d, cx, cy, r, _jc((205, 150, 80), rng))
    _ell(d, cx, cy, r * 0.84, _jc((245, 205, 110), rng))
    for _ in range(int(rng.integers(5, 9))):
        a, rr = rng.uniform(0, 2 * math.pi), r * 0.6 * math.sqrt(rng.uniform(0.05, 1.0))
        _ell(d, cx + rr * math.cos(a), cy + rr * math.sin(a), r * 0.12, _jc((185, 40, 30), rng))


def _tv(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    d.polygon(
        [
            (cx - w * 0.05, y0 + h * 0.7),
            (cx + w * 0.05, y0 + h * 0.7),
            (cx + w * 0.12, y1 - h * 0.06),
            (cx - w * 0.12, y1 - h * 0.06),
        ],
        fill=(40, 40, 45),
    )
    d.rectangle((cx - w * 0.3, y1 - h * 0.07, cx + w * 0.3, y1), fill=(40, 40, 45))
    d.rectangle((x0, y0, x1, y0 + h * 0.74), fill=_jc((20, 20, 24), rng, 6))
    d.rectangle((x0 + w * 0.05, y0 + h * 0.06, x1 - w * 0.05, y0 + h * 0.68), fill=_jc((45, 70, 110), rng, 20))
    d.polygon(
        [(x0 + w * 0.05, y0 + h * 0.06), (x0 + w * 0.4, y0 + h * 0.06), (x0 + w * 0.05, y0 + h * 0.4)],
        fill=_jc((80, 110, 150), rng, 10),
    )


def _cup(d: ImageDraw.ImageDraw, b: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = b
    w, h = x1 - x0, y1 - y0
    col = _jc([(240, 240, 235), (200, 60, 50), (60, 110, 190)][int(rng.integers(3))], rng)
    d.ellipse((x0 + w * 0.55, y0 + h * 0.22, x1, y0 + h * 0.72), outline=col, width=max(int(w * 0.09), 1))
    d.rounded_rectangle((x0, y0 + h * 0.05, x0 + w * 0.75, y1), radius=w * 0.12, fill=col)
    d.ellipse((x0, y0, x0 + w * 0.75, y0 + h * 0.14), fill=(90, 55, 30))


DRAWERS: dict[str, Callable[[ImageDraw.ImageDraw, Box, np.random.Generator], None]] = {
    "stop sign": _stop_sign,
    "clock": _clock,
    "sports ball": _sports_ball,
    "kite": _kite,
    "traffic light": _traffic_light,
    "pizza": _pizza,
    "tv": _tv,
    "cup": _cup,
}


def render(kind: str, scene: list[Placed], rng: np.random.Generator, size: int) -> Image.Image:
    """Draw ``scene`` (objects in order) over a ``kind`` background; returns an RGB image of ``size``²."""
    s = size * SUPERSAMPLE
    img = Image.fromarray(np.clip(background(kind, rng, s), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for p in scene:
        DRAWERS[p.cls](d, tuple(v * SUPERSAMPLE for v in p.box), rng)  # type: ignore[arg-type]
    return img.resize((size, size), Image.Resampling.BOX)


def _box(cls: str, cx: float, cy: float, h: float, max_w: float) -> Box:
    """Box of class ``cls`` centred at (cx, cy) with height ``h``, shrunk so the width is at most ``max_w``."""
    h = min(h, max_w / ASPECT[cls])
    w = h * ASPECT[cls]
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _stack(a: str, b: str, S: float, cx: float, b_y: float, b_h: float, a_h: float, a_on_top: bool) -> list[Placed]:
    bb = _box(b, cx, b_y, b_h, 0.6 * S)
    ah = min(a_h, 0.5 * S / ASPECT[a])
    cy = bb[1] - ah / 2 if a_on_top else bb[3] + ah / 2
    return [Placed(b, bb), Placed(a, _box(a, cx, cy, ah, 0.5 * S))]


def layout_positional(a: str, word: str, b: str, rng: np.random.Generator, size: int) -> list[Placed]:
    """Place object ``a`` relative to ``b`` so that "a <word> b" is true of the picture (drawing order)."""
    S = float(size)
    j = lambda amt: float(rng.uniform(-amt, amt)) * S  # noqa: E731
    sc = lambda h: h * S * float(rng.uniform(0.92, 1.08))  # noqa: E731
    if word in ("left", "right"):
        cy, sgn = 0.55 * S + j(0.05), (1 if word == "left" else -1)
        return [
            Placed(a, _box(a, 0.5 * S - sgn * 0.23 * S + j(0.03), cy + j(0.02), sc(0.36), 0.4 * S)),
            Placed(b, _box(b, 0.5 * S + sgn * 0.23 * S + j(0.03), cy + j(0.02), sc(0.36), 0.4 * S)),
        ]
    if word in ("above", "below"):
        cx, sgn = 0.5 * S + j(0.12), (1 if word == "above" else -1)
        return [
            Placed(a, _box(a, cx + j(0.04), 0.5 * S - sgn * 0.235 * S + j(0.02), sc(0.32), 0.6 * S)),
            Placed(b, _box(b, cx + j(0.04), 0.5 * S + sgn * 0.235 * S + j(0.02), sc(0.32), 0.6 * S)),
        ]
    if word == "on top of":
        hb = sc(0.36)
        return _stack(a, b, S, 0.5 * S + j(0.1), 0.9 * S - hb / 2 + j(0.02), hb, sc(0.3), True)
    if word == "under":
        hb = sc(0.34)
        return _stack(a, b, S, 0.5 * S + j(0.1), 0.1 * S + hb / 2 + j(0.02), hb, sc(0.3), False)
    if word == "near":
        ha, hb, gap = sc(0.32), sc(0.32), 0.03 * S
        wa, wb = min(ha * ASPECT[a], 0.38 * S), min(hb * ASPECT[b], 0.38 * S)
        x, cy = 0.5 * S + j(0.06) - (wa + wb + gap) / 2, 0.58 * S + j(0.05)
        first, second = ((a, ha, wa), (b, hb, wb)) if rng.random() < 0.5 else ((b, hb, wb), (a, ha, wa))
        return [
            Placed(first[0], _box(first[0], x + first[2] / 2, cy, first[1], first[2])),
            Placed(second[0], _box(second[0], x + first[2] + gap + second[2] / 2, cy, second[1], second[2])),
        ]
    if word == "far":
        flip = rng.random() < 0.5
        ax, bx = (0.82, 0.18) if flip else (0.18, 0.82)
        return [
            Placed(a, _box(a, ax * S + j(0.02), 0.76 * S + j(0.02), sc(0.24), 0.28 * S)),
            Placed(b, _box(b, bx * S + j(0.02), 0.25 * S + j(0.02), sc(0.24), 0.28 * S)),
        ]
    if word in ("in front of", "behind"):
        front, back = (a, b) if word == "in front of" else (b, a)
        bk = _box(back, 0.45 * S + j(0.06), 0.4 * S + j(0.03), sc(0.36), 0.48 * S)
        side = 1 if rng.random() < 0.5 else -1
        cx = float(np.clip((bk[0] + bk[2]) / 2 + side * 0.18 * S, 0.27 * S, 0.73 * S))
        return [Placed(back, bk), Placed(front, _box(front, cx, (bk[1] + bk[3]) / 2 + 0.2 * S, sc(0.42), 0.5 * S))]
    if word == "inside":
        bb = _box(b, 0.5 * S + j(0.03), 0.5 * S + j(0.03), sc(0.72), 0.85 * S)
        fx0, fy0, fx1, fy1 = INTERIOR[b]
        w, h = bb[2] - bb[0], bb[3] - bb[1]
        ix0, iy0, ix1, iy1 = bb[0] + fx0 * w, bb[1] + fy0 * h, bb[0] + fx1 * w, bb[1] + fy1 * h
        ab = _box(a, (ix0 + ix1) / 2, (iy0 + iy1) / 2, min(iy1 - iy0, 0.24 * S) * 0.9, (ix1 - ix0) * 0.9)
        return [Placed(b, bb), Placed(a, ab)]
    if word == "outside":
        sgn = 1 if rng.random() < 0.5 else -1
        return [
            Placed(b, _box(b, 0.5 * S + sgn * 0.12 * S, 0.5 * S + j(0.04), sc(0.46), 0.5 * S)),
            Placed(a, _box(a, 0.5 * S - sgn * 0.36 * S, 0.5 * S + j(0.15), sc(0.22), 0.22 * S)),
        ]
    raise ValueError(f"no layout for positional word {word!r}")


def layout_counting(cls: str, n: int, kind: str, rng: np.random.Generator, size: int) -> list[Placed]:
    """``n`` non-overlapping objects of ``cls`` in the background's natural band, one per column slot."""
    S, slot = float(size), float(size) / n
    h0 = {1: 0.42, 2: 0.34, 3: 0.28, 4: 0.24}.get(n, 0.2) * S
    lo, hi = BAND[kind]
    out = []
    for i in range(n):
        h = min(h0 * float(rng.uniform(0.9, 1.1)), 0.88 * slot / ASPECT[cls])
        w = h * ASPECT[cls]
        cx = (i + 0.5) * slot + float(rng.uniform(-0.4, 0.4)) * (slot - w) / 2
        cy = float(np.clip(rng.uniform(lo, hi) * S, h / 2 + 1, S - h / 2 - 1))
        out.append(Placed(cls, _box(cls, cx, cy, h, w)))
    return out
