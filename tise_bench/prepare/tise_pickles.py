"""Import TISE's released caption pickles (VinAIResearch/tise-toolbox) as manifests, exactly as released.

The release (``download_scripts/download_evaluation_data.py``) puts these files in the toolbox tree; point
``tise_pickles=`` at the toolbox root or at any folder holding them (searched recursively):

=========  ==================================================  =========================================
subset     file (data=coco)                                    items (as TISE's scoring code reads them)
=========  ==================================================  =========================================
realism    ``image_realism/captions/coco_image_realism_        list of ``{caption_id, caption}``
           captions.pkl``
rp         ``text_relevance/captions/COCO_RP_captions.pkl``    list of ``{caption_id, caption,
                                                               mismatched_captions: [99 str]}``
pa         ``positional_alignment/captions/PA_input_           dict positional word -> list of
           captions.pkl``                                      ``{caption_id, caption, false_caption}``
ca         ``counting_alignment/captions/CA_input_             list of ``{caption_id, caption,
           captions.pkl``                                      counting_info: {class name: count}}``
soa        ``semantic_object_accuracy/captions/label_XX_       one list per class (XX = 0..79, Hinz et
           <name>.pkl`` (80 files, unzipped from captions.zip) al.'s names, e.g. ``label_04_plane``)
=========  ==================================================  =========================================

``data=cub`` imports ``image_realism/captions/cub_image_realism_captions.pkl`` (realism) and
``text_relevance/captions/CUB_RP_captions.pkl`` (rp, with ``mismatched_captions``).

What the records carry:

* rp: ``mismatched`` = the item's released ``mismatched_captions``: RP ranks each image's caption against
  exactly those (``RP_coco.py``/``RP_cub.py``), not against seeded draws. A released-name rp file whose
  items lack them is refused.
* pa: ``positional_word``, ``counter_caption`` = ``false_caption``; ca: ``counts`` = ``counting_info``.
* soa: ``category`` (COCO name of class XX), ``labels`` (classes the caption names); record id
  ``<caption_id>_<XX>`` (``<label file stem>_<i>`` when items carry no ``caption_id``, as in Hinz et al.'s
  original files).
* Where the images live in TISE's folder layout (``model.layout=tise``, see :mod:`tise_bench.data.samples`):
  pa records get ``tise_dir`` (the pickle's word key = the image sub-folder) and ``tise_caption_id``; soa
  records get ``tise_dir`` (label file stem = sub-folder), ``tise_index`` (position in the label file, as
  AttnGAN++'s ``image_<i>.png``) and ``tise_caption_id``. realism/rp/ca images are ``<caption_id>.png``.

Fallback (renamed files only): a subset whose released file name is not found is looked up by name tokens
-- the file name split into lower-case tokens at non-alphanumerics must contain one of
``NAME_PATTERNS[subset]`` (e.g. ``captions_rp.pkl``). Released names of the other data set (``CUB_RP_...``
when data=coco) never match this way. A token-matched rp file may lack ``mismatched_captions`` (RP then
draws seeded distractors from the subset, and a note says so).

A subset with no file, or several, is an error listing every pickle found and what it matched;
``subsets=[...]`` imports only some subsets. Pickles are loaded data-only (a pickle that tries to import
code is refused). With ``coco_root`` (data=coco) the records also get ``reference`` (the COCO image of the
caption id), and realism records ``category`` and ``ref_captions``. No sampling happens: records keep the
pickles' order; ``seed`` is only recorded in the manifest headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..data.manifest import Record
from ..errors import DataError
from ..text.captions import POSITIONAL_WORDS, find_classes
from ..text.coco_classes import COCO_CLASSES
from .coco import CocoImage, load_coco_val
from .common import Log, Summary, clean_caption, load_pickle, reference_path, unique_ids, write_subsets

SUBSETS = ("realism", "rp", "pa", "ca", "soa")
DATA_SUBSETS: Mapping[str, tuple[str, ...]] = {"coco": SUBSETS, "cub": ("realism", "rp")}
RELEASE_FILES: Mapping[str, Mapping[str, str]] = {
    "coco": {
        "realism": "coco_image_realism_captions.pkl",
        "rp": "COCO_RP_captions.pkl",
        "pa": "PA_input_captions.pkl",
        "ca": "CA_input_captions.pkl",
    },
    "cub": {"realism": "cub_image_realism_captions.pkl", "rp": "CUB_RP_captions.pkl"},
}
"""The released file names (``download_scripts/download_evaluation_data.py``), matched case-insensitively."""
SOA_ZIP = "captions.zip"
NAME_PATTERNS: Mapping[str, tuple[frozenset[str], ...]] = {
    "realism": (frozenset({"realism"}), frozenset({"fid"}), frozenset({"is"}), frozenset({"30k"})),
    "rp": (frozenset({"rp"}), frozenset({"rprecision"}), frozenset({"r", "precision"})),
    "pa": (frozenset({"pa"}), frozenset({"positional"}), frozenset({"position"})),
    "ca": (frozenset({"ca"}), frozenset({"counting"}), frozenset({"count"})),
}
SOA_RE = re.compile(r"^label_(\d+)_(.+)$", re.IGNORECASE)
# Hinz et al.'s label file names that are not the COCO class name with spaces removed.
SOA_FILE_NAMES: Mapping[str, str] = {
    "plane": "airplane",
    "hydrant": "fire hydrant",
    "ball": "sports ball",
    "racket": "tennis racket",
    "oranges": "orange",
    "sofa": "couch",
    "table": "dining table",
    "monitor": "tv",
    "computermouse": "mouse",
    "scissor": "scissors",
}
_ALL_RELEASED = {n.lower() for names in RELEASE_FILES.values() for n in names.values()}


def _tokens(path: Path) -> set[str]:
    return set(t for t in re.split(r"[^a-z0-9]+", path.stem.lower()) if t)


def find_tise_pickles(folder: Path, data: str = "coco") -> tuple[dict[str, list[Path]], list[Path], dict[str, str]]:
    """-> (subset → matching pickles (soa: all label files), every pickle found, subset → how it matched:
    ``"released name"`` or ``"name tokens (fallback)"``)."""
    found = sorted(p for ext in ("*.pkl", "*.pickle") for p in folder.rglob(ext))
    released = {s: n.lower() for s, n in RELEASE_FILES.get(data, {}).items()}
    hits: dict[str, list[Path]] = {s: [] for s in SUBSETS}
    how: dict[str, str] = {}
    for p in found:
        if SOA_RE.match(p.stem):
            hits["soa"].append(p)
        for s, name in released.items():
            if p.name.lower() == name:
                hits[s].append(p)
    for s in hits:
        if hits[s]:
            how[s] = "released name"
    for s, pats in NAME_PATTERNS.items():
        if hits[s]:
            continue
        for p in found:
            if p.name.lower() in _ALL_RELEASED or SOA_RE.match(p.stem):
                continue
            if any(pat <= _tokens(p) for pat in pats):
                hits[s].append(p)
        if hits[s]:
            how[s] = "name tokens (fallback)"
    return hits, found, how


def _layout_error(folder: Path, data: str, problem: str, hits: dict[str, list[Path]], found: list[Path]) -> DataError:
    rel = {p: p.relative_to(folder).as_posix() for p in found}
    listing = "\n".join(f"    {rel[p]}  -> {[s for s, ps in hits.items() if p in ps] or 'no subset'}" for p in found)
    names = "; ".join(f"{s}: {n}" for s, n in RELEASE_FILES.get(data, {}).items())
    fallback = "; ".join(
        f"{s}: token(s) " + " | ".join("+".join(sorted(t)) for t in pats) for s, pats in NAME_PATTERNS.items()
    )
    zips = [p for p in folder.rglob(SOA_ZIP)]
    hint = (
        (
            f"\n  found {zips[0].relative_to(folder).as_posix()}: unzip it (TISE's download script extracts "
            f"the 80 label_XX_<name>.pkl files next to it)"
        )
        if zips and not hits.get("soa")
        else ""
    )
    return DataError(
        f"tise_pickles={folder}: {problem}.\n  expected TISE's released files (data={data}): {names}"
        + ("; soa: label_XX_<name>.pkl (80 files)" if "soa" in DATA_SUBSETS.get(data, ()) else "")
        + f"\n  (renamed files are matched by name tokens: {fallback})\n"
        f"  pickles found ({len(found)}):\n{listing or '    (none)'}{hint}\n"
        f"  Point tise_pickles at the folder holding them, or import only some subsets with "
        f"tise_subsets=[realism,rp,...]."
    )


def _items(obj: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(obj, dict) and "captions" in obj and isinstance(obj["captions"], list):
        obj = obj["captions"]
    if not isinstance(obj, (list, tuple)):
        raise DataError(f"{path}: expected a list of caption dicts, got {type(obj).__name__}")
    for i, it in enumerate(obj):
        if not isinstance(it, dict) or not clean_caption(it.get("caption", "")):
            raise DataError(f"{path}: item {i} is not a dict with a non-empty 'caption' (got {str(it)[:80]!r})")
    return list(obj)


def _cid_of(item: Mapping[str, Any]) -> str | None:
    v = item.get("caption_id", item.get("id"))
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip() or None
    try:
        return str(int(v))  # numpy integers too
    except (TypeError, ValueError):
        return str(v)


def _cid(item: Mapping[str, Any], fallback: str) -> str:
    v = _cid_of(item)
    return fallback if v is None else v


class _Refs:
    """caption id → COCO image (reference / category / other captions), when coco_root is given."""

    def __init__(self, coco_root: str | Path | None, out: Path, summary: Summary) -> None:
        self.by_caption: dict[str, CocoImage] = {}
        self.by_image: dict[int, CocoImage] = {}
        self.out = out
        self.image_dir: Path | None = None
        if coco_root is not None:
            val = load_coco_val(coco_root, summary)
            self.image_dir = val.image_dir
            self.by_image = {im.id: im for im in val.images}
            self.by_caption = {str(cid): im for im in val.images for cid, _ in im.captions}
        self.unmatched = 0

    def image(self, item: Mapping[str, Any], cid: str) -> CocoImage | None:
        if self.image_dir is None:
            return None
        im = self.by_image.get(int(item["image_id"])) if item.get("image_id") is not None else None
        im = im or self.by_caption.get(cid)
        self.unmatched += int(im is None)
        return im

    def path(self, im: CocoImage | None) -> str | None:
        return None if im is None or self.image_dir is None else reference_path(self.image_dir / im.file_name, self.out)


def _mismatched(it: Mapping[str, Any], i: int, path: Path) -> tuple[str, ...] | None:
    m = it.get("mismatched_captions")
    if m is None:
        return None
    if isinstance(m, str) or not isinstance(m, (list, tuple)) or not m:
        raise DataError(
            f"{path}: rp item {i}: 'mismatched_captions' should be a non-empty list of captions "
            f"(TISE's RP ranks the caption against them), got {str(m)[:80]!r}"
        )
    out = tuple(clean_caption(x) for x in m if isinstance(x, str))
    if len(out) != len(m) or not all(out):
        raise DataError(f"{path}: rp item {i}: 'mismatched_captions' holds an empty or non-string entry")
    return out


def _plain(path: Path, refs: _Refs, realism: bool) -> list[Record]:
    out = []
    for i, it in enumerate(_items(load_pickle(path), path)):
        cid, text = _cid(it, f"{path.stem}_{i}"), clean_caption(it["caption"])
        im = refs.image(it, cid)
        extra: dict[str, Any] = {}
        if realism and im is not None:
            extra = {"category": im.category, "ref_captions": tuple(t for c, t in im.captions if str(c) != cid)}
        out.append(Record(id=cid, caption=text, reference=refs.path(im), **extra))
    return out


def _rp(path: Path, refs: _Refs, released: bool, summary: Summary) -> list[Record]:
    items = _items(load_pickle(path), path)
    mism = [_mismatched(it, i, path) for i, it in enumerate(items)]
    lacking = [i for i, m in enumerate(mism) if m is None]
    if lacking and (released or len(lacking) < len(items)):
        raise DataError(
            f"{path}: {len(lacking)} of {len(items)} rp items have no 'mismatched_captions' (first: "
            f"item {lacking[0]}); TISE's released RP file gives every caption its 99 distractors and "
            f"RP must rank against exactly those. Use the released file unmodified."
        )
    if lacking:
        summary.notes.append(
            f"rp: {path.name} carries no 'mismatched_captions': RP draws seeded distractors "
            f"from the subset's captions (not TISE's released ones)"
        )
    out = []
    for i, (it, m) in enumerate(zip(items, mism)):
        cid = _cid(it, f"{path.stem}_{i}")
        out.append(
            Record(
                id=cid,
                caption=clean_caption(it["caption"]),
                reference=refs.path(refs.image(it, cid)),
                mismatched=m or (),
            )
        )
    return out


def _pa(path: Path, refs: _Refs) -> list[Record]:
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: the pa pickle should be a dict positional word -> list of "
            f"{{caption_id, caption, false_caption}}, got {type(obj).__name__}"
        )
    order = {w: i for i, w in enumerate(POSITIONAL_WORDS)}
    out = []
    for word in sorted(obj, key=lambda w: (order.get(str(w).strip().lower(), len(order)), str(w))):
        for i, it in enumerate(_items(obj[word], path)):
            if not clean_caption(it.get("false_caption", "")):
                raise DataError(f"{path}: pa item {i} of word {word!r} has no 'false_caption'")
            cid = _cid(it, f"pa_{i}")
            out.append(
                Record(
                    id=cid,
                    caption=clean_caption(it["caption"]),
                    reference=refs.path(refs.image(it, cid)),
                    positional_word=str(word).strip().lower(),
                    counter_caption=clean_caption(it["false_caption"]),
                    extra={"tise_dir": str(word), "tise_caption_id": cid},
                )
            )
    return out


def _count(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() and f >= 0 and not isinstance(v, bool) else None


def _ca(path: Path, refs: _Refs) -> list[Record]:
    out = []
    for i, it in enumerate(_items(load_pickle(path), path)):
        info = it.get("counting_info")
        if not isinstance(info, dict) or not info:
            raise DataError(f"{path}: ca item {i} has no 'counting_info' {{class name: count}} (got {info!r})")
        counts = {str(c): _count(n) for c, n in info.items()}
        bad = {c: info[c] for c, n in zip(info, counts.values()) if n is None}
        if bad:
            raise DataError(
                f"{path}: ca item {i}: 'counting_info' counts must be non-negative whole numbers, got {bad!r}"
            )
        cid = _cid(it, f"ca_{i}")
        out.append(
            Record(
                id=cid,
                caption=clean_caption(it["caption"]),
                reference=refs.path(refs.image(it, cid)),
                counts={c: n for c, n in counts.items() if n is not None},  # all whole numbers (checked)
                labels=tuple(counts),
            )
        )
    return out


def _soa(paths: Iterable[Path], refs: _Refs, summary: Summary) -> list[Record]:
    files: dict[int, tuple[str, Path]] = {}
    for p in paths:
        m = SOA_RE.match(p.stem)
        assert m is not None
        idx, name = int(m.group(1)), m.group(2).replace("_", " ").strip().lower()
        if idx in files:
            raise DataError(
                f"soa: two label files for class {idx}: {files[idx][1]} and {p}; keep one folder of "
                f"label_XX_<name>.pkl files under tise_pickles"
            )
        cls = COCO_CLASSES[idx] if 0 <= idx < len(COCO_CLASSES) else name
        if cls.replace(" ", "") != name.replace(" ", "") and SOA_FILE_NAMES.get(name.replace(" ", "")) != cls:
            summary.notes.append(
                f"soa: {p.name}: index {idx} is {cls!r} in COCO order, file says {name!r}; using {cls!r}"
            )
        files[idx] = (cls, p)
    out = []
    for idx, (cls, p) in sorted(files.items()):
        for i, it in enumerate(_items(load_pickle(p), p)):
            cid, text = _cid_of(it), clean_caption(it["caption"])
            labels = tuple(dict.fromkeys(m.name for m in find_classes(text)))
            extra: dict[str, Any] = {"tise_dir": p.stem, "tise_index": i}
            if cid is not None:
                extra["tise_caption_id"] = cid
            out.append(
                Record(
                    id=f"{cid}_{idx}" if cid is not None else f"{p.stem}_{i}",
                    caption=text,
                    reference=refs.path(refs.image(it, cid or "")),
                    category=cls,
                    labels=labels,
                    extra=extra,
                )
            )
    return out


def prepare_tise_pickles(
    pickles_dir: str | Path,
    out: str | Path,
    coco_root: str | Path | None = None,
    seed: int = 0,
    subsets: Iterable[str] | None = None,
    log: Log | None = print,
    data: str = "coco",
) -> dict[str, Path]:
    """Convert the TISE pickles under ``pickles_dir`` into ``<out>/<subset>.jsonl``; returns subset → path."""
    folder, out = Path(pickles_dir), Path(out)
    if data not in DATA_SUBSETS:
        raise DataError(f"data={data}: TISE released caption pickles for {sorted(DATA_SUBSETS)} only")
    if not folder.is_dir():
        raise DataError(
            f"tise_pickles={folder} is not a folder; point it at the unpacked TISE caption pickles "
            f"(the tise-toolbox folder after download_scripts/download_evaluation_data.py)"
        )
    if data == "cub" and coco_root is not None:
        raise DataError(
            "coco_root is for data=coco; TISE's CUB pickles have no COCO references (give data.reference_stats for FID)"
        )
    allowed = DATA_SUBSETS[data]
    want = list(allowed if subsets is None else subsets)
    bad = [s for s in want if s not in allowed]
    if bad:
        raise DataError(f"subsets={bad} unknown for data={data}; choose from {list(allowed)}")
    hits, found, how = find_tise_pickles(folder, data)
    missing = [s for s in want if not hits[s]]
    several = [s for s in want if s != "soa" and len(hits[s]) > 1]
    if missing or several:
        problem = "; ".join(
            ([f"no pickle found for {missing}"] if missing else [])
            + [f"several pickles match {s}: {[p.relative_to(folder).as_posix() for p in hits[s]]}" for s in several]
        )
        raise _layout_error(folder, data, problem, hits, found)
    summary = Summary()
    for s in want:
        if how.get(s) != "released name":
            summary.notes.append(
                f"{s}: {hits[s][0].name} matched by name tokens (not TISE's released name "
                f"{RELEASE_FILES[data].get(s, 'label_XX_<name>.pkl')})"
            )
    refs = _Refs(coco_root, out, summary)
    build: dict[str, Callable[[], list[Record]]] = {
        "realism": lambda: _plain(hits["realism"][0], refs, realism=True),
        "rp": lambda: _rp(hits["rp"][0], refs, how.get("rp") == "released name", summary),
        "pa": lambda: _pa(hits["pa"][0], refs),
        "ca": lambda: _ca(hits["ca"][0], refs),
        "soa": lambda: _soa(hits["soa"], refs, summary),
    }
    records: dict[str, list[Record]] = {}
    for s in want:
        recs = build[s]()
        dup = len(recs) - len({r.id for r in recs})
        if dup:
            summary.notes.append(f"{s}: {dup} repeated caption id(s) kept with a -<k> suffix (<id>-1, <id>-2, ...)")
        records[s] = unique_ids(recs)
    if refs.unmatched:
        summary.notes.append(f"{refs.unmatched} caption(s) not found in {coco_root}'s captions: no reference")
    if coco_root is None:
        summary.notes.append("no coco_root given: records have no 'reference' (FID needs data.reference_stats)")
    return write_subsets(out, records, seed, summary, log)
