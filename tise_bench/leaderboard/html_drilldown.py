"""The leaderboard's per-prompt drill-down: thumbnails, captions, per-sample metrics and detected boxes.

Reads one run folder only (``metrics.json``, ``samples.parquet`` and ``detections.npz``, where the run wrote
its detector's boxes and class names); it never opens the feature cache or runs a network.

Images are read and decoded by the run's own reader (:mod:`tise_bench.imagefile`: regular files only, size and
decompression-bomb guards, format allow-list, EXIF/16-bit/alpha handling), and each file's sha256 is compared with
the one ``samples.parquet`` recorded: an image changed since it was scored is shown marked as such.
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

from .. import imagefile
from ..errors import DataError

log = logging.getLogger(__name__)
THUMB = 160  # longest thumbnail side, pixels
_NOT_METRICS = {"subset", "id", "k", "file", "sha256", "caption"}


def _class_name(cid: float, names: list[str]) -> str:
    i = int(cid)
    return names[i] if 0 <= i < len(names) else f"class {i}"


def _limit(recorded: object, default: int) -> int:
    """The run's recorded guard when it is stricter than the default, else the default: the drill-down only
    draws thumbnails, so a run that disabled a guard does not disable it here."""
    if isinstance(recorded, int) and not isinstance(recorded, bool) and 0 < recorded < default:
        return recorded
    return default


def _thumbnail(path: Path, max_pixels: int, max_bytes: int) -> tuple[str, int, int, int, int, str]:
    """``(data URI, thumb w, thumb h, original w, original h, sha256 of the file)`` (JPEG, ≤ THUMB px), read and
    decoded as the run reads images; raises :class:`DataError` for anything the run would refuse."""
    data = imagefile.read_bytes(str(path), max_bytes)
    im = imagefile.decode_image(data, str(path), max_pixels)
    ow, oh = im.size
    im.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=82)
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, im.width, im.height, ow, oh, imagefile.content_hash(data)


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
    recorded = meta.get("config")
    cfg: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    max_pixels = _limit(cfg.get("max_pixels"), imagefile.DEFAULT_MAX_PIXELS)
    max_bytes = _limit(cfg.get("max_file_bytes"), imagefile.DEFAULT_MAX_FILE_BYTES)
    n_changed = 0
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
        scored = str(rec.get("sha256") or "")
        try:
            s["thumbnail"], s["width"], s["height"], ow, oh, sha = _thumbnail(path, max_pixels, max_bytes)
        except DataError as e:  # missing/unreadable/refused file: the card is still shown, with why
            notes.append(f"image not shown: {_first_line(str(e))}")
        else:
            if not scored:
                notes.append("not verified: samples.parquet records no sha256 for this image")
            elif sha != scored:
                s["changed"] = True
                n_changed += 1
                notes.append(
                    f"CHANGED since scored: {path.name} now has sha256 {sha[:12]}…, the run scored {scored[:12]}…; "
                    "the metrics belong to the earlier file"
                )
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
    out_notes = [n for n in [dd_note] if n]
    if n_changed:
        out_notes.append(f"{n_changed} image(s) changed since the run scored them (marked)")
    if out_notes:
        out["note"] = "; ".join(out_notes)
    return out


def _first_line(msg: str, limit: int = 300) -> str:
    line = msg.splitlines()[0] if msg else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
