"""Find a model's generated images by prompt id: ``<id>.<ext>`` or ``<id>_<k>.<ext>`` (k-th sample).

Missing ids, extra files and duplicates (the same id/k twice, e.g. ``7.png`` and ``7.jpg``) are counted;
the default policy fails with a message naming the first offenders and the switch that skips them.

Only the top level of the folder is listed (never walked), so a directory symlink loop inside it cannot
hang the run; sub-folders are ignored, except one named like an image (``7.png/``), which is an extra.
A symlink is an image like any other file: one to a readable image works; a dangling or self-referencing
one is left for the reader (:func:`tise_bench.imagefile.read_bytes`) to report as unreadable.
File names are matched to ids exactly, then after Unicode NFC normalisation (macOS writes NFD names).

:func:`find_images_layout` finds each subset's images by folder layout (``model.layout``: ``flat`` as above,
or ``tise``: TISE's own generated-image folders, scored in place) and per-subset folders
(``model.subset_dirs``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..errors import ConfigError, DataError
from .manifest import Record

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Separator of the copy number that makes a repeated id unique (``A``, ``A-1``, ``A-2``): never ``_``, since
#: ``<id>_<k>`` names sample k of ``<id>`` (a made id ``A_1`` would be read as sample 1 of ``A``).
DUP_SEPARATOR = "-"
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


def _as_sample(stem: str, ids: set[str], nfc_ids: dict[str, str]) -> tuple[str, int] | None:
    """``<id>_<k>`` -> (id, k) when ``<id>`` is an id, else None (whether or not ``stem`` is an id itself)."""
    base, sep, k = stem.rpartition("_")
    if sep and k.isascii() and k.isdigit():
        rid = _lookup(base, ids, nfc_ids)
        if rid is not None:
            return rid, int(k)
    return None


def _parse(stem: str, ids: set[str], nfc_ids: dict[str, str] | None = None) -> tuple[str, int] | None:
    """``stem`` -> (id, k): ``<id>`` is sample 0, ``<id>_<k>`` sample k; an exact id match wins (see
    :func:`_check_unambiguous` for when it may not)."""
    nfc_ids = {} if nfc_ids is None else nfc_ids
    rid = _lookup(stem, ids, nfc_ids)
    if rid is not None:
        return rid, 0
    return _as_sample(stem, ids, nfc_ids)


def _is_image(path: Path, exts: tuple[str, ...]) -> bool:
    """A visible name with an image extension that is not a folder (is_dir is False for a looping link)."""
    return not path.name.startswith(".") and os.path.splitext(path.name)[1].lower() in exts and not path.is_dir()


def _check_unambiguous(d: Path, names: Sequence[str], ids: set[str], nfc_ids: dict[str, str]) -> None:
    """Refuse a folder where a file name can be read two ways.

    With ids ``A`` and ``A_1`` both, ``A_1.png`` is the image of id ``A_1`` -- or sample 1 of ``A``. When the
    folder names other images of ``A`` as samples (``A_0.png``, ``A_2.png``: names that are no id), it is read
    as the latter by a person and as the former by the exact-match rule, so we stop instead of guessing. Plain
    ``A.png`` beside ``A_1.png`` (one image each) is not ambiguous and keeps working.
    """
    multi: dict[str, str] = {}  # id -> one file naming a sample of it that is not an id itself
    both: list[tuple[str, str, str, int]] = []  # (file, exact id, other id, k)
    for name in names:
        stem = os.path.splitext(name)[0]
        sample = _as_sample(stem, ids, nfc_ids)
        if sample is None:
            continue
        exact = _lookup(stem, ids, nfc_ids)
        if exact is None:
            multi.setdefault(sample[0], name)
        else:
            both.append((name, exact, sample[0], sample[1]))
    bad = [b for b in both if b[2] in multi]
    if not bad:
        return
    name, exact, other, k = bad[0]
    more = f" (and {len(bad) - 1} more: {', '.join(b[0] for b in bad[1:4])}{', ...' if len(bad) > 4 else ''})"
    raise DataError(
        f"ambiguous image name in {d}: {name} is the image of id {exact!r}, but also sample {k} of id {other!r}, "
        f"whose other samples are named {other}_<k> here (e.g. {multi[other]})"
        f"{more if len(bad) > 1 else ''}; tise_bench will not guess which prompt it shows.\n"
        f"  fix: rename the ids in the manifest so that no id is another id followed by _<digits> (older "
        f"manifests written by tise_bench.prepare gave repeated ids a _<n> suffix: prepare them again, repeated ids now "
        f"get {DUP_SEPARATOR}<n>), or give each of these ids a single image, or keep the subsets whose ids collide in "
        f"separate folders (model.subset_dirs.<subset>)."
    )


def _list(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except OSError as e:
        raise DataError(
            f"cannot list the generated-images folder {d}: {e.strerror or e}\n"
            f"  fix: check its permissions, or point model.samples_dir at a readable folder"
        ) from None


def find_images(
    samples_dir: str | Path,
    ids: list[str],
    *,
    policy: str = "fail",
    exts: tuple[str, ...] = IMAGE_EXTS,
    ignore: Sequence[str] = (),
) -> tuple[dict[str, list[tuple[int, str]]], SampleReport]:
    """-> ({id: [(k, path), ...] sorted by k}, report). Listing order never affects the result.

    ``policy`` (the ``on_mismatch`` switch): ``"fail"`` raises :class:`DataError` when anything is missing,
    extra or duplicated; ``"skip"`` returns what matches and leaves the rest in the report (counted).
    ``ignore``: ids whose images are not required (the records ``data.limit`` left out; the reference-only
    records of ``tise_bench.compare``): their files are neither returned nor extras, and none is missing.
    """
    if policy not in POLICIES:
        raise ConfigError(f"on_mismatch={policy!r} is not valid; choose one of: {', '.join(POLICIES)}")
    d = Path(samples_dir)
    if not d.is_dir():
        raise DataError(
            f"generated-images folder not found: {d}\n  fix: put the model's images there (named <id>.png or "
            f"<id>_<k>.png), or point model.samples_dir / paths.samples_root at the folder that has them."
        )
    skipped = set(ignore)
    idset = set(ids) | skipped
    nfc_ids: dict[str, str] = {}
    for i in [*ids, *sorted(skipped)]:
        nfc_ids.setdefault(_nfc(i), i)
    found: dict[tuple[str, int], str] = {}
    report = SampleReport()
    names = _list(d)
    images = {n for n in names if _is_image(d / n, exts)}
    _check_unambiguous(d, sorted(images), idset, nfc_ids)
    for name in names:
        path = d / name
        stem, ext = os.path.splitext(name)
        if name.startswith("."):
            continue
        if name not in images:
            if path.is_file() or ext.lower() in exts:  # a folder named like an image is an extra too
                report.extra.append(str(path))
            continue
        parsed = _parse(stem, idset, nfc_ids)
        if parsed is None:
            report.extra.append(str(path))
            continue
        if parsed[0] in skipped:  # not required (beyond data.limit): expected, not scored
            continue
        if parsed in found:
            report.duplicate.append(str(path))
            continue
        found[parsed] = str(path)
    by_id: dict[str, list[tuple[int, str]]] = {}
    for (rid, k), p in sorted(found.items()):
        by_id.setdefault(rid, []).append((k, p))
    report.missing = [i for i in ids if i not in by_id and i not in skipped]
    problems = [
        (n, lst)
        for n, lst in (("missing", report.missing), ("extra", report.extra), ("duplicate", report.duplicate))
        if lst
    ]
    if problems and policy != "skip":
        lines = [
            f"{len(lst)} {n} ({', '.join(os.path.basename(x) for x in lst[:3])}{', ...' if len(lst) > 3 else ''})"
            for n, lst in problems
        ]
        raise DataError(
            f"images in {d} do not match the eval set's {len(ids)} prompt ids: " + "; ".join(lines) + ".\n"
            "  fix: add/rename the files (expected <id>.png or <id>_<k>.png), or pass on_mismatch=skip to "
            "evaluate the images that match and report the rest in metrics.json."
        )
    return by_id, report


# ---------------------------------------------------------------------------------------------------------
# Folder layouts per subset (model.layout / model.subset_dirs)
# ---------------------------------------------------------------------------------------------------------

LAYOUTS = ("flat", "tise")
TISE_NESTED = ("pa", "soa")
_SOA_DIR = re.compile(r"^label_(\d+)_", re.IGNORECASE)
_SOA_IMAGE = re.compile(r"^image_(\d+)$")
ByID = Dict[str, List[Tuple[int, str]]]


def _merge(into: SampleReport, rep: SampleReport) -> None:
    for name in ("missing", "extra", "duplicate"):
        lst = getattr(into, name)
        seen = set(lst)
        for x in getattr(rep, name):
            if x not in seen:
                seen.add(x)
                lst.append(x)


def _subdirs(d: Path) -> dict[str, Path]:
    return {n: d / n for n in _list(d) if not n.startswith(".") and (d / n).is_dir()}


def _match_folder(d: Path, name: str, subdirs: dict[str, Path]) -> Path | None:
    """``d/name`` when it is a folder, else the one sub-folder equal to ``name`` ignoring case / NFC."""
    if name in subdirs:
        return subdirs[name]
    key = _nfc(name).casefold()
    hits = [p for n, p in subdirs.items() if _nfc(n).casefold() == key]
    return hits[0] if len(hits) == 1 else None


def _scan(
    folder: Path,
    resolve,
    exts: tuple[str, ...],
    found: dict[tuple[str, int], str],
    report: SampleReport,
    names: tuple[set[str], dict[str, str]] | None = None,
) -> None:
    """Files of one sub-folder: ``resolve(stem) -> (record id, k) | None``; the rest are extras. ``names``:
    the (ids, NFC map) that ``resolve`` parses file names against, checked for ambiguity first."""
    listing = _list(folder)
    if names is not None:
        _check_unambiguous(folder, [n for n in listing if _is_image(folder / n, exts)], *names)
    for name in listing:
        if name.startswith("."):
            continue
        path = folder / name
        stem, ext = os.path.splitext(name)
        if ext.lower() not in exts or path.is_dir():
            if path.is_file() or (path.is_dir() and ext.lower() in exts):
                report.extra.append(str(path))
            continue
        parsed = resolve(stem)
        if parsed is None:
            report.extra.append(str(path))
        elif parsed in found:
            report.duplicate.append(str(path))
        else:
            found[parsed] = str(path)


def _by_id(found: dict[tuple[str, int], str], ids: Sequence[str], report: SampleReport) -> ByID:
    out: ByID = {}
    for (rid, k), p in sorted(found.items()):
        out.setdefault(rid, []).append((k, p))
    report.missing.extend(i for i in ids if i not in out)
    return out


def _tise_pa(d: Path, records: Sequence[Record], exts: tuple[str, ...]) -> tuple[ByID, SampleReport]:
    """TISE's PA layout: ``<d>/<positional word>/<caption_id>.png`` (``<caption_id>_<k>.png`` = sample k).
    The word folder is the record's ``tise_dir`` (the pickle's key) or else its ``positional_word``."""
    report = SampleReport()
    found: dict[tuple[str, int], str] = {}
    groups: dict[str, list[Record]] = {}
    for r in records:
        word = r.extra.get("tise_dir") or r.positional_word
        if word:
            groups.setdefault(str(word), []).append(r)
    subdirs = _subdirs(d)
    for word, recs in groups.items():
        folder = _match_folder(d, word, subdirs)
        if folder is None:
            continue
        cid_to_id: dict[str, str] = {}
        for r in recs:
            cid_to_id.setdefault(str(r.extra.get("tise_caption_id") or r.id), r.id)
        cids = set(cid_to_id)
        nfc = {_nfc(c): c for c in cids}

        def resolve(stem: str, _m=cid_to_id, _c=cids, _n=nfc):
            p = _parse(stem, _c, _n)
            return None if p is None else (_m[p[0]], p[1])

        _scan(folder, resolve, exts, found, report, (cids, nfc))
    return _by_id(found, [r.id for r in records], report), report


def _soa_class(r: Record) -> int | None:
    m = _SOA_DIR.match(str(r.extra.get("tise_dir") or ""))
    if m:
        return int(m.group(1))
    from ..text.coco_classes import CLASS_TO_INDEX

    return CLASS_TO_INDEX.get(r.category or "")


def _tise_soa(d: Path, records: Sequence[Record], exts: tuple[str, ...]) -> tuple[ByID, SampleReport]:
    """TISE's SOA layout: one folder per label file, ``<d>/label_XX_<name>/``, holding either
    ``image_<i>.png`` (AttnGAN++'s ``coco_gen_soa_input_images.py``: i = position in the label file) or
    ``<caption_id>_<k>.png`` / ``<caption_id>.png`` (TISE README: k = 0..2, three samples per caption).
    The folder is found by its class number XX (the name part may differ, e.g. ``label_04_plane``)."""
    report = SampleReport()
    found: dict[tuple[str, int], str] = {}
    folders: dict[int, Path] = {}
    for name, p in _subdirs(d).items():
        m = _SOA_DIR.match(name)
        if m:
            idx = int(m.group(1))
            if idx in folders:
                raise DataError(
                    f"two SOA folders for class {idx} in {d}: {folders[idx].name} and {name}; "
                    f"keep one label_XX_<name>/ folder per class"
                )
            folders[idx] = p
    groups: dict[int, list[Record]] = {}
    for r in records:
        cls = _soa_class(r)
        if cls is not None:
            groups.setdefault(cls, []).append(r)
    for idx, recs in groups.items():
        folder = folders.get(idx)
        if folder is None:
            continue
        by_pos: dict[int, str] = {}
        cid_to_id: dict[str, str] = {}
        for pos, r in enumerate(recs):
            by_pos.setdefault(int(r.extra.get("tise_index", pos)), r.id)
            cid = r.extra.get("tise_caption_id")
            if cid is None:
                base, sep, tail = r.id.rpartition("_")
                cid = base if sep and tail == str(idx) else r.id
            cid_to_id.setdefault(str(cid), r.id)
        cids = set(cid_to_id)
        nfc = {_nfc(c): c for c in cids}

        def resolve(stem: str, _p=by_pos, _m=cid_to_id, _c=cids, _n=nfc):
            p = _parse(stem, _c, _n)
            if p is not None:
                return _m[p[0]], p[1]
            m = _SOA_IMAGE.match(stem)
            return (_p[int(m.group(1))], 0) if m and int(m.group(1)) in _p else None

        _scan(folder, resolve, exts, found, report, (cids, nfc))
    return _by_id(found, [r.id for r in records], report), report


def find_images_layout(
    samples_dir: str | Path | None,
    records_by_subset: Mapping[str, Sequence[Record]],
    *,
    layout: str = "flat",
    subset_dirs: Mapping[str, str | Path | None] | None = None,
    policy: str = "fail",
    exts: tuple[str, ...] = IMAGE_EXTS,
    beyond: Mapping[str, Sequence[Record]] | None = None,
) -> tuple[dict[str, ByID], SampleReport]:
    """-> ({subset: {id: [(k, path), ...]}}, report): each subset's images, found where its layout says.

    * ``layout="flat"`` (default): every subset's images are ``<dir>/<id>.png`` / ``<id>_<k>.png``
      (:func:`find_images`); with one folder for all subsets this is exactly ``find_images(samples_dir,
      all ids, policy=policy)``, errors included.
    * ``layout="tise"``: TISE's folders as its generators write them, scored in place: pa
      ``<dir>/<word>/<caption_id>.png`` and soa ``<dir>/label_XX_<name>/image_<i>.png`` (or
      ``<caption_id>_<k>.png``), see :func:`_tise_pa` / :func:`_tise_soa`; realism, rp and ca are flat
      (``<caption_id>.png``).
    * ``subset_dirs``: ``{subset: folder}`` overriding ``samples_dir`` per subset (TISE keeps each subset's
      images in its own folder: ``image_realism/images/coco/<method>``, ``text_relevance/images/coco/<method>``,
      ``positional_alignment/images/<method>``, ``counting_alignment/images/<method>``,
      ``semantic_object_accuracy/images/<method>``). A subset without an entry uses ``samples_dir``.

    Flat subsets sharing a folder are matched together (one listing; a file of one of them is not an extra
    of another). In a pa / soa folder, unknown sub-folders are ignored; its top-level files are extras unless
    flat subsets share the folder. The same id may map to different images in different subsets.
    ``policy`` is ``on_mismatch`` as for :func:`find_images` (the error names each subset and folder).
    ``beyond``: {subset: records whose images are not required}: those ``data.limit`` left out (not in
    ``records_by_subset``) or a subset's own records that have only a reference (``tise_bench.compare``); their
    images are neither scored nor extras, and none is missing. An id another record of the folder needs is kept.
    """
    beyond = beyond or {}
    if policy not in POLICIES:
        raise ConfigError(f"on_mismatch={policy!r} is not valid; choose one of: {', '.join(POLICIES)}")
    if layout not in LAYOUTS:
        raise ConfigError(
            f"model.layout={layout!r} is not valid; choose one of: {', '.join(LAYOUTS)} "
            f"(tise = TISE's generated-image folders: pa/<word>/, soa/label_XX_<name>/)"
        )
    given = {s: d for s, d in (subset_dirs or {}).items() if d not in (None, "")}
    unknown = sorted(set(given) - set(_SUBSET_NAMES))
    if unknown:
        raise ConfigError(f"model.subset_dirs has unknown subset(s) {unknown}; valid: {list(_SUBSET_NAMES)}")
    dirs: dict[str, Path] = {}
    for s in records_by_subset:
        d = given.get(s, samples_dir)
        if d in (None, ""):
            raise ConfigError(f"no image folder for subset {s!r}: set model.samples_dir or model.subset_dirs.{s}")
        dirs[s] = Path(d)
    nested = set(TISE_NESTED) if layout == "tise" else set()
    flat_groups: dict[str, list[str]] = {}
    for s in records_by_subset:
        if s not in nested:
            flat_groups.setdefault(os.path.abspath(dirs[s]), []).append(s)
    ids_of = {s: list(dict.fromkeys(r.id for r in recs)) for s, recs in records_by_subset.items()}
    left_out = {s: list(dict.fromkeys(r.id for r in beyond.get(s, ()))) for s in records_by_subset}

    left_set = {s: set(v) for s, v in left_out.items()}

    def skip(subs: Sequence[str]) -> list[str]:
        needed = {i for s in subs for i in ids_of[s] if i not in left_set[s]}
        return [i for s in subs for i in left_out[s] if i not in needed]

    if not nested.intersection(records_by_subset) and len(flat_groups) <= 1:  # one flat folder: the classic call
        subs = list(records_by_subset)
        ids = list(dict.fromkeys(i for s in subs for i in ids_of[s]))
        folder = dirs[subs[0]] if subs else Path(samples_dir or ".")
        by_id, report = find_images(folder, ids, policy=policy, exts=exts, ignore=skip(subs))
        return {s: {i: by_id[i] for i in ids_of[s] if i in by_id} for s in subs}, report

    out: dict[str, ByID] = {}
    report = SampleReport()
    per: list[tuple[str, Path, SampleReport]] = []
    for subs in flat_groups.values():
        d = dirs[subs[0]]
        _need_dir(d, subs, given)
        ids = list(dict.fromkeys(i for s in subs for i in ids_of[s]))
        by_id, rep = find_images(d, ids, policy="skip", exts=exts, ignore=skip(subs))
        for s in subs:
            out[s] = {i: by_id[i] for i in ids_of[s] if i in by_id}
        per.append(("+".join(subs), d, rep))
    for s in (x for x in records_by_subset if x in nested):
        d = dirs[s]
        _need_dir(d, [s], given)
        own = set(ids_of[s])  # kept first: positions (tise_index) unchanged
        recs = [*records_by_subset[s], *(r for r in beyond.get(s, ()) if r.id not in own)]
        by_id, rep = (_tise_pa if s == "pa" else _tise_soa)(d, recs, exts)
        if beyond.get(s):  # matched for the record, dropped for the score (data.limit)
            kept = own - set(skip([s]))
            by_id = {i: v for i, v in by_id.items() if i in kept}
            rep.missing = [i for i in rep.missing if i in kept]
        if os.path.abspath(d) not in flat_groups:  # files at the top of a pa/soa folder belong to nothing
            rep.extra[:0] = [str(d / n) for n in _list(d) if not n.startswith(".") and (d / n).is_file()]
        out[s] = by_id
        per.append((s, d, rep))
    for _, _, rep in per:
        _merge(report, rep)
    problems = [(name, d, rep) for name, d, rep in per if rep.missing or rep.extra or rep.duplicate]
    if problems and policy != "skip":
        lines = []
        for name, d, rep in problems:
            parts = [
                f"{len(lst)} {n} ({', '.join(os.path.basename(x) for x in lst[:3])}{', ...' if len(lst) > 3 else ''})"
                for n, lst in (("missing", rep.missing), ("extra", rep.extra), ("duplicate", rep.duplicate))
                if lst
            ]
            lines.append(f"  {name} in {d}: " + "; ".join(parts))
        raise DataError(
            f"generated images do not match the eval set (model.layout={layout}):\n" + "\n".join(lines) + "\n"
            f"  fix: add/rename the files ({_expected(layout)}), point model.subset_dirs.<subset> at the right "
            f"folder, or pass on_mismatch=skip to evaluate the images that match and report the rest in metrics.json."
        )
    return out, report


_SUBSET_NAMES = ("realism", "rp", "pa", "ca", "soa")


def _expected(layout: str) -> str:
    if layout == "tise":
        return (
            "realism/rp/ca: <caption_id>.png; pa: <word>/<caption_id>.png; soa: label_XX_<name>/image_<i>.png "
            "or label_XX_<name>/<caption_id>_<k>.png"
        )
    return "expected <id>.png or <id>_<k>.png"


def _need_dir(d: Path, subsets: Sequence[str], given: Mapping[str, Any]) -> None:
    if not d.is_dir():
        keys = ", ".join(f"model.subset_dirs.{s}" if s in given else "model.samples_dir" for s in subsets)
        raise DataError(
            f"generated-images folder for subset(s) {'+'.join(subsets)} not found: {d}\n"
            f"  fix: put the model's images there, or point {keys} at the folder that has them."
        )
