"""Find a model's generated images by prompt id: ``<id>.<ext>`` or ``<id>_<k>.<ext>`` (k-th sample).

Missing ids, extra files and duplicates (the same id/k twice, e.g. ``7.png`` and ``7.jpg``) are counted;
the default policy fails with a message naming the first offenders and the switch that skips them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class SampleReport:
    missing: list[str] = field(default_factory=list)  # ids without any image
    extra: list[str] = field(default_factory=list)  # files matching no id
    duplicate: list[str] = field(default_factory=list)  # files shadowed by another file for the same id/k

    def counts(self) -> dict[str, int]:
        return {"missing": len(self.missing), "extra": len(self.extra), "duplicate": len(self.duplicate)}


def _parse(stem: str, ids: set[str]) -> tuple[str, int] | None:
    if stem in ids:
        return stem, 0
    base, sep, k = stem.rpartition("_")
    if sep and k.isdigit() and base in ids:
        return base, int(k)
    return None


def find_images(samples_dir: str | Path, ids: list[str], *, policy: str = "fail",
                exts: tuple[str, ...] = IMAGE_EXTS) -> tuple[dict[str, list[tuple[int, str]]], SampleReport]:
    """-> ({id: [(k, path), ...] sorted by k}, report). Listing order never affects the result."""
    d = Path(samples_dir)
    if not d.is_dir():
        raise DataError(
            f"generated-images folder not found: {d}\n  fix: put the model's images there (named <id>.png or "
            f"<id>_<k>.png), or point model.samples_dir / paths.samples_root at the folder that has them."
        )
    idset = set(ids)
    found: dict[tuple[str, int], str] = {}
    report = SampleReport()
    for name in sorted(os.listdir(d)):
        path = d / name
        stem, ext = os.path.splitext(name)
        if ext.lower() not in exts or name.startswith("."):
            if path.is_file() and not name.startswith("."):
                report.extra.append(str(path))
            continue
        parsed = _parse(stem, idset)
        if parsed is None:
            report.extra.append(str(path))
            continue
        if parsed in found:
            report.duplicate.append(str(path))
            continue
        found[parsed] = str(path)
    by_id: dict[str, list[tuple[int, str]]] = {}
    for (rid, k), p in sorted(found.items()):
        by_id.setdefault(rid, []).append((k, p))
    report.missing = [i for i in ids if i not in by_id]
    problems = [(n, lst) for n, lst in (("missing", report.missing), ("extra", report.extra),
                                         ("duplicate", report.duplicate)) if lst]
    if problems and policy != "skip":
        lines = [f"{len(lst)} {n} ({', '.join(os.path.basename(x) for x in lst[:3])}{', ...' if len(lst) > 3 else ''})"
                 for n, lst in problems]
        raise DataError(
            f"images in {d} do not match the eval set's {len(ids)} prompt ids: " + "; ".join(lines) + ".\n"
            f"  fix: add/rename the files (expected <id>.png or <id>_<k>.png), or pass on_mismatch=skip to "
            f"evaluate the images that match and report the rest in metrics.json."
        )
    return by_id, report
