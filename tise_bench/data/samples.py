"""Find a model's generated images by prompt id: ``<id>.<ext>`` or ``<id>_<k>.<ext>`` (k-th sample).

Missing ids, extra files and duplicates (the same id/k twice, e.g. ``7.png`` and ``7.jpg``) are counted;
the default policy fails with a message naming the first offenders and the switch that skips them.

Only the top level of the folder is listed (never walked), so a directory symlink loop inside it cannot
hang the run; sub-folders are ignored, except one named like an image (``7.png/``), which is an extra.
A symlink is an image like any other file: one to a readable image works; a dangling or self-referencing
one is left for the reader (:func:`tise_bench.features.decode.read_bytes`) to report as unreadable.
File names are matched to ids exactly, then after Unicode NFC normalisation (macOS writes NFD names).
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
POLICIES = ("fail", "skip")


@dataclass
class SampleReport:
    missing: list[str] = field(default_factory=list)  # ids without any image
    extra: list[str] = field(default_factory=list)  # files matching no id
    duplicate: list[str] = field(default_factory=list)  # files shadowed by another file for the same id/k

    def counts(self) -> dict[str, int]:
        return {"missing": len(self.missing), "extra": len(self.extra), "duplicate": len(self.duplicate)}


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _lookup(name: str, ids: set[str], nfc_ids: dict[str, str]) -> str | None:
    if name in ids:
        return name
    return nfc_ids.get(_nfc(name))


def _parse(stem: str, ids: set[str], nfc_ids: dict[str, str] | None = None) -> tuple[str, int] | None:
    """``stem`` -> (id, k): ``<id>`` is sample 0, ``<id>_<k>`` sample k; an exact id match wins."""
    nfc_ids = {} if nfc_ids is None else nfc_ids
    rid = _lookup(stem, ids, nfc_ids)
    if rid is not None:
        return rid, 0
    base, sep, k = stem.rpartition("_")
    if sep and k.isascii() and k.isdigit():
        rid = _lookup(base, ids, nfc_ids)
        if rid is not None:
            return rid, int(k)
    return None


def _list(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except OSError as e:
        raise DataError(f"cannot list the generated-images folder {d}: {e.strerror or e}\n"
                        f"  fix: check its permissions, or point model.samples_dir at a readable folder") from None


def find_images(samples_dir: str | Path, ids: list[str], *, policy: str = "fail",
                exts: tuple[str, ...] = IMAGE_EXTS) -> tuple[dict[str, list[tuple[int, str]]], SampleReport]:
    """-> ({id: [(k, path), ...] sorted by k}, report). Listing order never affects the result.

    ``policy`` (the ``on_mismatch`` switch): ``"fail"`` raises :class:`DataError` when anything is missing,
    extra or duplicated; ``"skip"`` returns what matches and leaves the rest in the report (counted).
    """
    if policy not in POLICIES:
        raise ConfigError(f"on_mismatch={policy!r} is not valid; choose one of: {', '.join(POLICIES)}")
    d = Path(samples_dir)
    if not d.is_dir():
        raise DataError(
            f"generated-images folder not found: {d}\n  fix: put the model's images there (named <id>.png or "
            f"<id>_<k>.png), or point model.samples_dir / paths.samples_root at the folder that has them."
        )
    idset = set(ids)
    nfc_ids: dict[str, str] = {}
    for i in ids:
        nfc_ids.setdefault(_nfc(i), i)
    found: dict[tuple[str, int], str] = {}
    report = SampleReport()
    for name in _list(d):
        path = d / name
        stem, ext = os.path.splitext(name)
        if name.startswith("."):
            continue
        if ext.lower() not in exts:
            if path.is_file():
                report.extra.append(str(path))
            continue
        if path.is_dir():  # a folder named like an image (is_dir is False for a looping link)
            report.extra.append(str(path))
            continue
        parsed = _parse(stem, idset, nfc_ids)
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
