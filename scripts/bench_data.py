"""Synthetic eval set for ``scripts/bench.py``: seeded scenes of coloured shapes, captions, references, manifest.

Every prompt gets a generated image (``gen/<id>.png``) and a reference image of the same scene drawn with
other jitter (``ref/<id>.png``). Captions cycle through three kinds so every metric path runs:

* positional — "a red sports ball above a blue tv" (``positional_word``, ``counter_caption``: PA);
* counting — "three green kites on a grey background" (``counts``: CA);
* plain — "a yellow stop sign on a purple background".

Each prompt also carries GenEval's metadata for its scene (``tag``/``include``, evaluation_metadata.jsonl's
format: ``position``, ``counting`` or ``colors``) and T2I-CompBench's (``compbench``: 2D-spatial or numeracy),
so those protocols run on the same images.

Shapes stand in for COCO classes (circle → sports ball, rectangle → tv, diamond → kite, octagon → stop
sign) so SOA / CA look up real detector class names. Pixel noise keeps PNGs the size of natural images,
so reading and decoding cost what it would on real samples.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("sports ball", "tv", "kite", "stop sign")
PLURAL: dict[str, str] = {"sports ball": "sports balls", "tv": "tvs", "kite": "kites", "stop sign": "stop signs"}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 30),
    "grey": (128, 128, 128),
}
POSITIONS: dict[str, str] = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
#: T2I-CompBench's 2D-spatial relation of each position word
COMPBENCH_RELATION: dict[str, str] = {
    "above": "on the top of",
    "below": "on the bottom of",
    "left of": "on the left of",
    "right of": "on the right of",
}
COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class Scene:
    """What to draw: background colour and [(class, colour name, (cx, cy) as fractions, size fraction)]."""

    background: str
    objects: tuple[tuple[str, str, tuple[float, float], float], ...]


def _polygon(cx: float, cy: float, r: float, n: int, phase: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(phase + 2 * math.pi * k / n), cy + r * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def draw(scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    """Render ``scene`` at ``size``×``size`` with positional jitter and pixel noise drawn from ``rng``."""
    bg = np.asarray(COLOURS[scene.background], dtype=np.float32)
    ramp = np.linspace(-30.0, 30.0, size, dtype=np.float32)[:, None, None]
    base = np.clip(bg[None, None, :] + ramp + rng.normal(0.0, 6.0, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    for cls, colour, (fx, fy), fs in scene.objects:
        cx = (fx + rng.uniform(-0.04, 0.04)) * size
        cy = (fy + rng.uniform(-0.04, 0.04)) * size
        r = max(2.0, fs * size * rng.uniform(0.9, 1.1))
        fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
        if cls == "sports ball":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=(20, 20, 20))
        elif cls == "tv":
            d.rectangle((cx - 1.3 * r, cy - r, cx + 1.3 * r, cy + r), fill=(30, 30, 30))
            d.rectangle((cx - 1.1 * r, cy - 0.8 * r, cx + 1.1 * r, cy + 0.8 * r), fill=fill)
        elif cls == "kite":
            d.polygon(_polygon(cx, cy, r, 4, math.pi / 2), fill=fill, outline=(20, 20, 20))
        else:  # stop sign
            d.polygon(_polygon(cx, cy, r, 8, math.pi / 8), fill=fill, outline=(250, 250, 250))
    return img


def make_prompt(i: int, rng: np.random.Generator) -> tuple[Scene, dict[str, object]]:
    """Scene and manifest fields (without id/reference) of prompt ``i``; the kind cycles with ``i``."""
    colours = [c for c in COLOURS if c != "grey"]
    bg = "grey" if i % 2 else str(rng.choice(colours))
    kind = i % 3
    if kind == 0:
        a, b = (str(x) for x in rng.choice(CLASSES, 2, replace=False))
        ca, cb = (str(x) for x in rng.choice([c for c in colours if c != bg], 2, replace=False))
        word = str(rng.choice(list(POSITIONS)))
        off = {"above": (0.0, -0.25), "below": (0.0, 0.25), "left of": (-0.25, 0.0), "right of": (0.25, 0.0)}[word]
        pa, pb = (0.5 + off[0], 0.5 + off[1]), (0.5 - off[0], 0.5 - off[1])
        scene = Scene(bg, ((a, ca, pa, 0.14), (b, cb, pb, 0.14)))
        fields = {
            "caption": f"a {ca} {a} {word} a {cb} {b}",
            "counter_caption": f"a {ca} {a} {POSITIONS[word]} a {cb} {b}",
            "positional_word": word,
            "labels": [a, b],
            "category": a,
            "tag": "position",
            "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [word, 0]}],
            "compbench": {"task": "spatial", "object_a": a, "relation": COMPBENCH_RELATION[word], "object_b": b},
        }
    elif kind == 1:
        cls, colour, n = (
            str(rng.choice(CLASSES)),
            str(rng.choice([c for c in colours if c != bg])),
            int(rng.integers(1, 5)),
        )
        objs = tuple((cls, colour, ((k + 0.5) / n, 0.5 + rng.uniform(-0.15, 0.15)), 0.35 / n + 0.03) for k in range(n))
        scene = Scene(bg, objs)
        noun = cls if n == 1 else PLURAL[cls]
        fields = {
            "caption": f"{COUNT_WORDS[n]} {colour} {noun} on a {bg} background",
            "counts": {cls: n},
            "labels": [cls],
            "category": cls,
            "tag": "counting",
            "include": [{"class": cls, "count": n}],
            "exclude": [{"class": cls, "count": n + 1}],
            "compbench": {"task": "numeracy", "objects": [cls], "numbers": [n]},
        }
    else:
        cls, colour = str(rng.choice(CLASSES)), str(rng.choice([c for c in colours if c != bg]))
        scene = Scene(bg, ((cls, colour, (0.5, 0.5), 0.25),))
        fields = {
            "caption": f"a {colour} {cls} on a {bg} background",
            "labels": [cls],
            "category": cls,
            "tag": "colors",
            "include": [{"class": cls, "count": 1, "color": colour}],
        }
    return scene, fields


def make_dataset(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """Write ``gen/``, ``ref/`` (``n`` PNGs each) and ``manifest.jsonl`` under ``root``; return the manifest."""
    (root / "gen").mkdir(parents=True, exist_ok=True)
    (root / "ref").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rid = f"p{i:06d}"
        scene, fields = make_prompt(i, np.random.default_rng([seed, i]))
        draw(scene, size, np.random.default_rng([seed, i, 1])).save(root / "gen" / f"{rid}.png")
        draw(scene, size, np.random.default_rng([seed, i, 2])).save(root / "ref" / f"{rid}.png")
        lines.append(json.dumps({"id": rid, "reference": f"ref/{rid}.png", **fields}))
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def load_records(manifest: Path) -> list[dict[str, object]]:
    """The manifest's records as plain dicts (``reference`` made absolute), for the baseline tools."""
    out = []
    for line in manifest.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            rec["reference"] = str((manifest.parent / str(rec["reference"])).resolve())
            out.append(rec)
    return out
