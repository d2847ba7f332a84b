"""The leaderboard's per-prompt drill-down: thumbnails, captions, per-sample metrics and detected boxes.

Reads one run folder only (``metrics.json``, ``samples.parquet`` and ``detections.npz``, where the run wrote
its detector's boxes and class names); it never opens the feature cache or runs a network.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image


log = logging.getLogger(__name__)
THUMB = 160  # longest thumbnail side, pixels
_NOT_METRICS = {"subset", "id", "k", "file", "sha256", "caption"}


def _class_name(cid: float, names: list[str]) -> str:
    i = int(cid)
    return names[i] if 0 <= i < len(names) else f"class {i}"


def _thumbnail(path: Path) -> tuple[str, int, int, int, int]:
    """``(data URI, thumb w, thumb h, original w, original h)`` of an image file (JPEG, ≤ THUMB px)."""
    with Image.open(path) as im:
        ow, oh = im.size
        im = im.convert("RGB")
        im.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=82)
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, im.width, im.height, ow, oh


def _detections(
    run_meta: dict[str, Any], run_dir: Path, shas: list[str]
) -> tuple[dict[str, tuple], list[str], str | None]:
    """sha -> (boxes (k, 6), size [w, h]) from the run's ``detections.npz``, the detector's class names, and a
    note when there are no boxes to show."""
    if not (run_meta.get("backbones") or {}).get("detector"):
        return {}, [], "the run used no detector, so no boxes"
    info = run_meta.get("detections") or {}
    path = run_dir / str(info.get("file") or "detections.npz")
    if not path.is_file():
        return (
            {},
            [],
            (
                f"{path.name} not in the run folder (written by runs since detections were recorded); "
                "re-run the evaluation to show boxes"
            ),
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            index = {str(s): i for i, s in enumerate(z["sha256"])}
            offsets, boxes, size = z["offsets"], z["boxes"], z["size"]
            names = [str(n) for n in z["class_names"]]
    except (OSError, ValueError, KeyError) as e:  # truncated or foreign file: the report still renders
        log.warning("drill-down: %s unreadable (%s)", path, e)
        return {}, [], f"{path.name} could not be read; no boxes"
    found = {s: (boxes[offsets[index[s]] : offsets[index[s] + 1]], size[index[s]]) for s in shas if s in index}
    return found, names, None


def _boxes(dets: np.ndarray, sx: float, sy: float, threshold: float, names: list[str]) -> list[list[Any]]:
    out = []
    for x1, y1, x2, y2, score, cid in np.asarray(dets, dtype=float).tolist():
        if score < 0 or score < threshold:  # -1 = padding row
            continue
        out.append(
            [
                round(x1 * sx, 1),
                round(y1 * sy, 1),
                round(x2 * sx, 1),
                round(y2 * sy, 1),
                round(score, 3),
                _class_name(cid, names),
            ]
        )
    return out


def _resolve(file: str, run_dir: Path) -> Path:
    """Sample paths are absolute as written by the runner; a relative one is tried against the run folder."""
    p = Path(file)
    return p if p.is_absolute() or p.is_file() else run_dir / p


def build_drilldown(run_dir: Path, n: int = 24, threshold: float = 0.5, max_boxes: int = 8) -> dict[str, Any]:
    """The ``drilldown`` section of a leaderboard for one run folder.

    Takes the first ``n`` samples of the ``realism`` subset (all subsets if it is absent) from
    ``samples.parquet``; each gets a JPEG thumbnail (≤ 160 px) as a data URI, its caption, its non-NaN
    per-sample metric values, and the run's detector boxes with score ≥ ``threshold``, scaled to the
    thumbnail; at most ``max_boxes`` (the highest scores) are kept so a noisy detector stays readable.
    A missing image or detections entry gives the sample a ``note`` instead of failing.
    """
    run_dir = Path(run_dir)
    meta_path, table_path = run_dir / "metrics.json", run_dir / "samples.parquet"
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if not table_path.is_file():
        return {
            "model": meta.get("model", run_dir.name),
            "threshold": threshold,
            "samples": [],
            "note": f"{table_path} not found",
        }
    table = pd.read_parquet(table_path)
    if "subset" in table.columns and (table["subset"] == "realism").any():
        table = table[table["subset"] == "realism"]
    table = table.head(n)
    shas = [str(s) for s in table.get("sha256", pd.Series([], dtype=str)).tolist()]
    dets, names, dd_note = _detections(meta, run_dir, shas)
    metric_cols = [c for c in table.columns if c not in _NOT_METRICS]
    samples = []
    for rec in table.to_dict("records"):
        notes: list[str] = []
        s: dict[str, Any] = {
            "id": str(rec.get("id", "")),
            "k": int(rec.get("k", 0) or 0),
            "caption": str(rec.get("caption", "")),
            "thumbnail": None,
            "width": THUMB,
            "height": THUMB,
            "boxes": [],
        }
        s["metrics"] = {
            c: float(rec[c])
            for c in metric_cols
            if isinstance(rec.get(c), (int, float)) and math.isfinite(float(rec[c]))
        }
        path = _resolve(str(rec.get("file", "")), run_dir)
        ow = oh = None
        try:
            s["thumbnail"], s["width"], s["height"], ow, oh = _thumbnail(path)
        except (OSError, ValueError) as e:  # missing/unreadable file: still shown, with why
            notes.append(f"image not readable: {path.name} ({type(e).__name__})")
        hit = dets.get(str(rec.get("sha256", "")))
        if hit is not None:
            d, size = hit
            sw, sh = (float(size[0]), float(size[1])) if size[0] > 0 else (float(ow or THUMB), float(oh or THUMB))
            boxes = _boxes(d, s["width"] / sw, s["height"] / sh, threshold, names)
            s["boxes"] = boxes[:max_boxes]
            if len(boxes) > max_boxes:
                notes.append(f"{len(boxes) - max_boxes} more boxes ≥ {threshold:g} not drawn")
        elif dd_note is None and "detector" in (meta.get("backbones") or {}):
            notes.append("no recorded detections for this image")
        if notes:
            s["note"] = "; ".join(notes)
        samples.append(s)
    out: dict[str, Any] = {
        "model": meta.get("model", run_dir.name),
        "threshold": threshold,
        "samples": samples,
        "class_names": "the detector's own, recorded by the run",
    }
    if dd_note:
        out["note"] = dd_note
    return out
