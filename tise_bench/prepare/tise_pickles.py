"""Import TISE's released caption pickles (SPEC §4) as the five manifests, so the paper's exact sets are used.

Contents (as SPEC §4 describes them):

* realism, rp: a list of dicts ``{"caption_id", "caption"}`` (an ``"image_id"`` key is used when present);
* pa: a dict ``positional word -> list of {"caption_id", "caption", "false_caption"}``;
* ca: a list of dicts that also carry ``"counting_info": {class: count}``;
* soa: one pickle per class, ``label_XX_<name>.pkl`` (XX = the 0..79 class index), items as for realism.

**File names are an assumption** (the release's exact names are not pinned down here). Every ``*.pkl`` /
``*.pickle`` under the folder (recursively) is considered; its name is split into lower-case tokens at
non-alphanumerics and assigned to a subset when it contains the tokens of one of these patterns:

=========  ==============================================================================
realism    ``realism`` | ``fid`` | ``is`` | ``30k``       (e.g. ``captions_realism.pkl``)
rp         ``rp`` | ``rprecision`` | ``r`` + ``precision`` (e.g. ``captions_rp.pkl``)
pa         ``pa`` | ``positional`` | ``position``          (e.g. ``captions_pa.pkl``)
ca         ``ca`` | ``counting`` | ``count``                (e.g. ``captions_ca.pkl``)
soa        ``label_XX_<name>.pkl``                          (e.g. ``soa/label_00_person.pkl``)
=========  ==============================================================================

A subset with no file, or with more than one, is an error that lists every pickle found and what it
matched; ``subsets=[...]`` imports only some subsets. Pickles are loaded data-only (a pickle that tries
to import code is refused). With ``coco_root`` the records also get ``reference`` (the COCO image of the
caption id), and realism records ``category`` and ``ref_captions``. No sampling happens: records keep the
pickles' order; ``seed`` is only recorded in the manifest headers. rp records carry no ``mismatched``
list: the RP metric draws its seeded distractors from the subset's other captions, as TISE does.
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
NAME_PATTERNS: Mapping[str, tuple[frozenset[str], ...]] = {
    "realism": (frozenset({"realism"}), frozenset({"fid"}), frozenset({"is"}), frozenset({"30k"})),
    "rp": (frozenset({"rp"}), frozenset({"rprecision"}), frozenset({"r", "precision"})),
    "pa": (frozenset({"pa"}), frozenset({"positional"}), frozenset({"position"})),
    "ca": (frozenset({"ca"}), frozenset({"counting"}), frozenset({"count"})),
}
SOA_RE = re.compile(r"^label_(\d+)_(.+)$", re.IGNORECASE)


def _tokens(path: Path) -> set[str]:
    return set(t for t in re.split(r"[^a-z0-9]+", path.stem.lower()) if t)


def find_tise_pickles(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Subset → matching pickles (soa: all label files), plus the list of every pickle found."""
    found = sorted(p for ext in ("*.pkl", "*.pickle") for p in folder.rglob(ext))
    hits: dict[str, list[Path]] = {s: [] for s in SUBSETS}
    for p in found:
        if SOA_RE.match(p.stem):
            hits["soa"].append(p)
            continue
        toks = _tokens(p)
        for s, pats in NAME_PATTERNS.items():
            if any(pat <= toks for pat in pats):
                hits[s].append(p)
    return hits, found


def _layout_error(folder: Path, problem: str, hits: dict[str, list[Path]], found: list[Path]) -> DataError:
    rel = {p: p.relative_to(folder).as_posix() for p in found}
    listing = "\n".join(f"    {rel[p]}  -> {[s for s, ps in hits.items() if p in ps] or 'no subset'}" for p in found)
    expected = "; ".join(f"{s}: name with token(s) " + " | ".join("+".join(sorted(t)) for t in pats)
                         for s, pats in NAME_PATTERNS.items())
    return DataError(f"tise_pickles={folder}: {problem}.\n  expected (file names are an assumption, see "
                     f"tise_bench.prepare.tise_pickles): {expected}; soa: label_XX_<name>.pkl\n"
                     f"  pickles found ({len(found)}):\n{listing or '    (none)'}\n"
                     f"  Rename the files, or import only some subsets with subsets=[realism,rp,...].")


def _items(obj: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(obj, dict) and "captions" in obj and isinstance(obj["captions"], list):
        obj = obj["captions"]
    if not isinstance(obj, (list, tuple)):
        raise DataError(f"{path}: expected a list of caption dicts, got {type(obj).__name__}")
    for i, it in enumerate(obj):
        if not isinstance(it, dict) or not clean_caption(it.get("caption", "")):
            raise DataError(f"{path}: item {i} is not a dict with a non-empty 'caption' (got {str(it)[:80]!r})")
    return list(obj)


def _cid(item: Mapping[str, Any], fallback: str) -> str:
    v = item.get("caption_id", item.get("id"))
    return fallback if v is None else str(int(v)) if not isinstance(v, str) else v


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


def _pa(path: Path, refs: _Refs) -> list[Record]:
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: the pa pickle should be a dict positional word -> list of "
                        f"{{caption_id, caption, false_caption}}, got {type(obj).__name__}")
    order = {w: i for i, w in enumerate(POSITIONAL_WORDS)}
    out = []
    for word in sorted(obj, key=lambda w: (order.get(str(w).strip().lower(), len(order)), str(w))):
        for i, it in enumerate(_items(obj[word], path)):
            if not clean_caption(it.get("false_caption", "")):
                raise DataError(f"{path}: pa item {i} of word {word!r} has no 'false_caption'")
            cid = _cid(it, f"pa_{i}")
            out.append(Record(id=cid, caption=clean_caption(it["caption"]), reference=refs.path(refs.image(it, cid)),
                              positional_word=str(word).strip().lower(),
                              counter_caption=clean_caption(it["false_caption"])))
    return out


def _ca(path: Path, refs: _Refs) -> list[Record]:
    out = []
    for i, it in enumerate(_items(load_pickle(path), path)):
        info = it.get("counting_info")
        if not isinstance(info, dict) or not info:
            raise DataError(f"{path}: ca item {i} has no 'counting_info' {{class: count}} (got {info!r})")
        counts = {str(c): int(n) for c, n in info.items()}
        cid = _cid(it, f"ca_{i}")
        out.append(Record(id=cid, caption=clean_caption(it["caption"]), reference=refs.path(refs.image(it, cid)),
                          counts=counts, labels=tuple(counts)))
    return out


def _soa(paths: Iterable[Path], refs: _Refs, summary: Summary) -> list[Record]:
    files = []
    for p in paths:
        m = SOA_RE.match(p.stem)
        assert m is not None
        idx, name = int(m.group(1)), m.group(2).replace("_", " ").strip().lower()
        cls = COCO_CLASSES[idx] if 0 <= idx < len(COCO_CLASSES) else name
        if cls != name and cls.replace(" ", "") != name.replace(" ", ""):
            summary.notes.append(f"soa: {p.name}: index {idx} is {cls!r} in COCO order, file says {name!r}; "
                                 f"using {cls!r}")
        files.append((idx, cls, p))
    out = []
    for idx, cls, p in sorted(files):
        for i, it in enumerate(_items(load_pickle(p), p)):
            cid, text = _cid(it, f"label{idx}_{i}"), clean_caption(it["caption"])
            labels = tuple(dict.fromkeys(m.name for m in find_classes(text)))
            out.append(Record(id=f"{cid}_{idx}", caption=text, reference=refs.path(refs.image(it, cid)),
                              category=cls, labels=labels))
    return out


def prepare_tise_pickles(pickles_dir: str | Path, out: str | Path, coco_root: str | Path | None = None,
                         seed: int = 0, subsets: Iterable[str] | None = None,
                         log: Log | None = print) -> dict[str, Path]:
    """Convert the TISE pickles under ``pickles_dir`` into ``<out>/<subset>.jsonl``; returns subset → path."""
    folder, out = Path(pickles_dir), Path(out)
    if not folder.is_dir():
        raise DataError(f"tise_pickles={folder} is not a folder; point it at the unpacked TISE caption pickles")
    want = list(SUBSETS if subsets is None else subsets)
    bad = sorted(set(want) - set(SUBSETS))
    if bad:
        raise DataError(f"subsets={bad} unknown; choose from {list(SUBSETS)}")
    hits, found = find_tise_pickles(folder)
    missing = [s for s in want if not hits[s]]
    several = [s for s in want if s != "soa" and len(hits[s]) > 1]
    if missing or several:
        problem = "; ".join(([f"no pickle found for {missing}"] if missing else [])
                            + [f"several pickles match {s}: {[p.name for p in hits[s]]}" for s in several])
        raise _layout_error(folder, problem, hits, found)
    summary = Summary()
    refs = _Refs(coco_root, out, summary)
    build: dict[str, Callable[[], list[Record]]] = {
        "realism": lambda: _plain(hits["realism"][0], refs, realism=True),
        "rp": lambda: _plain(hits["rp"][0], refs, realism=False),
        "pa": lambda: _pa(hits["pa"][0], refs),
        "ca": lambda: _ca(hits["ca"][0], refs),
        "soa": lambda: _soa(hits["soa"], refs, summary),
    }
    records: dict[str, list[Record]] = {}
    for s in want:
        recs = build[s]()
        dup = len(recs) - len({r.id for r in recs})
        if dup:
            summary.notes.append(f"{s}: {dup} repeated caption id(s) kept with a _k suffix")
        records[s] = unique_ids(recs)
    if refs.unmatched:
        summary.notes.append(f"{refs.unmatched} caption(s) not found in {coco_root}'s captions: no reference")
    if coco_root is None:
        summary.notes.append("no coco_root given: records have no 'reference' (FID needs data.reference_stats)")
    return write_subsets(out, records, seed, summary, log)
