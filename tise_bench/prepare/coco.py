"""COCO-2014 val → the five TISE subsets (SPEC §4): realism, rp, pa, ca, soa.

Inputs (under ``coco_root`` or ``coco_root/annotations``): ``captions_val2014.json`` and
``instances_val2014.json``; images are referenced as ``coco_root/val2014/<file_name>`` (or
``coco_root/images/val2014``). Record ids are COCO caption ids as strings; soa ids are
``f"{caption_id}_{class_index}"`` because one caption can name several classes.

Selection rules (every random draw is seeded per subset, inputs sorted by id first):

* realism -- ``sizes.realism`` captions, one per image before any image gets a second; ``reference`` =
  the image, ``ref_captions`` = the image's other captions, ``category`` = the image's class with the
  largest total annotated area (ties by name).
* rp -- ``sizes.rp`` prompts drawn the same way; ``mismatched`` = ``sizes.rp_distractors`` distinct
  captions of OTHER images (never one reading the same as the prompt).
* pa -- captions with exactly one positional mention (:func:`~tise_bench.text.find_positional`), so the
  counter caption swaps the only relation and stays unambiguous; up to ``sizes.pa_per_word`` per word.
  Words without an opposite ("between") are skipped and counted.
* ca -- captions whose stated counts (:func:`~tise_bench.text.find_counts`) all equal the number of
  non-crowd instances of that class in the image.
* soa -- per class, captions naming the class (:func:`~tise_bench.text.find_classes`) on images whose
  annotations contain it (crowd boxes included); up to ``sizes.soa_cap(class)`` per class.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..data.manifest import Record
from ..errors import DataError
from ..text.captions import OPPOSITES, POSITIONAL_WORDS, counter_caption, find_classes, find_counts, find_positional
from ..text.coco_classes import CATEGORY_ID_TO_CLASS, CLASS_TO_INDEX, COCO_CLASSES
from .common import (
    Log,
    Sizes,
    Summary,
    clean_caption,
    draw_distractors,
    reference_path,
    round_robin,
    sample,
    subset_rng,
    write_subsets,
)

CAPTIONS_FILE = "captions_val2014.json"
INSTANCES_FILE = "instances_val2014.json"
IMAGE_DIR = "val2014"


@dataclass(frozen=True)
class CocoImage:
    """One val image: its captions ``(caption_id, text)`` sorted by id and its instance annotations."""

    id: int
    file_name: str
    captions: tuple[tuple[int, str], ...]
    counts: Mapping[str, int]  # non-crowd instances per class
    classes: frozenset[str]  # every annotated class, crowd boxes included
    category: str | None  # class with the largest total area (ties by name); None if unannotated


@dataclass(frozen=True)
class CocoVal:
    images: tuple[CocoImage, ...]  # sorted by image id; only images that have captions
    image_dir: Path


def find_annotation(coco_root: Path, name: str) -> Path:
    """``coco_root/name`` or ``coco_root/annotations/name``; a clear error naming both places otherwise."""
    for p in (coco_root / name, coco_root / "annotations" / name):
        if p.is_file():
            return p
    raise DataError(
        f"COCO annotation file {name!r} not found in {coco_root} or {coco_root / 'annotations'}. "
        f"Download annotations_trainval2014.zip from https://cocodataset.org/#download, unzip it so "
        f"that {coco_root / 'annotations' / name} exists, or point coco_root=<dir> at its folder."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON ({e.msg}, line {e.lineno}); re-download the COCO annotations"
        ) from None
    if not isinstance(data, dict) or "annotations" not in data:
        raise DataError(f"{path}: expected a COCO annotation file with an 'annotations' list")
    return data


def load_coco_val(coco_root: str | Path, summary: Summary | None = None) -> CocoVal:
    """Read the two COCO-2014 val annotation files into per-image records (captions + instances)."""
    root = Path(coco_root)
    if not root.is_dir():
        raise DataError(
            f"coco_root={root} is not a folder; it should hold annotations/{CAPTIONS_FILE}, "
            f"annotations/{INSTANCES_FILE} and {IMAGE_DIR}/"
        )
    caps_json = _read_json(find_annotation(root, CAPTIONS_FILE))
    inst_json = _read_json(find_annotation(root, INSTANCES_FILE))
    summary = summary if summary is not None else Summary()
    files = {int(im["id"]): str(im["file_name"]) for im in caps_json.get("images", [])}
    for im in inst_json.get("images", []):
        files.setdefault(int(im["id"]), str(im["file_name"]))
    cat_names = {int(c["id"]): str(c["name"]) for c in inst_json.get("categories", [])} or dict(CATEGORY_ID_TO_CLASS)
    unknown = sorted(set(cat_names.values()) - set(COCO_CLASSES))
    if unknown:
        summary.notes.append(f"categories not among the 80 COCO classes, ignored for ca/soa: {unknown}")

    captions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for a in caps_json["annotations"]:
        text = clean_caption(a.get("caption", ""))
        if not text:
            summary.skip("input", "empty caption")
            continue
        captions[int(a["image_id"])].append((int(a["id"]), text))
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    areas: dict[int, dict[str, float]] = defaultdict(dict)
    for a in inst_json["annotations"]:
        name = cat_names.get(int(a["category_id"]))
        if name is None:
            continue
        img = int(a["image_id"])
        areas[img][name] = areas[img].get(name, 0.0) + float(a.get("area", 0.0))
        if not a.get("iscrowd", 0):
            counts[img][name] = counts[img].get(name, 0) + 1

    images = []
    for img_id in sorted(captions):
        if img_id not in files:
            summary.skip("input", "caption of an image missing from the 'images' list", len(captions[img_id]))
            continue
        area = areas.get(img_id, {})
        category = min(area, key=lambda c: (-area[c], c)) if area else None
        images.append(
            CocoImage(
                img_id,
                files[img_id],
                tuple(sorted(captions[img_id])),
                dict(counts.get(img_id, {})),
                frozenset(area),
                category,
            )
        )
    if not images:
        raise DataError(f"{root}: no captioned images found in {CAPTIONS_FILE}")
    image_dir = next((d for d in (root / IMAGE_DIR, root / "images" / IMAGE_DIR) if d.is_dir()), root / IMAGE_DIR)
    return CocoVal(tuple(images), image_dir)


def _caption_pool(val: CocoVal) -> list[tuple[int, str, CocoImage]]:
    return sorted(((cid, text, im) for im in val.images for cid, text in im.captions), key=lambda t: t[0])


def build_realism(val: CocoVal, n: int | None, seed: int, ref: Any) -> list[Record]:
    """One caption per image first, then more; each record carries the image, its class and other captions."""
    groups = [[(cid, text, im) for cid, text in im.captions] for im in val.images]
    picked = round_robin(groups, n, subset_rng(seed, "realism"))
    return [
        Record(
            id=str(cid),
            caption=text,
            reference=ref(im),
            category=im.category,
            ref_captions=tuple(t for c, t in im.captions if c != cid),
        )
        for cid, text, im in sorted(picked, key=lambda t: t[0])
    ]


def build_rp(val: CocoVal, n: int | None, k: int, seed: int, ref: Any) -> list[Record]:
    """``n`` prompts (one per image first), each with ``k`` mismatched captions of other images."""
    rng = subset_rng(seed, "rp")
    groups = [[(cid, text, im) for cid, text in im.captions] for im in val.images]
    picked = sorted(round_robin(groups, n, rng), key=lambda t: t[0])
    pool = _caption_pool(val)
    texts, owners = [t for _, t, _ in pool], [im.id for _, _, im in pool]
    return [
        Record(
            id=str(cid),
            caption=text,
            reference=ref(im),
            mismatched=tuple(draw_distractors(rng, texts, owners, im.id, text, k)),
        )
        for cid, text, im in picked
    ]


def build_pa(val: CocoVal, per_word: int | None, seed: int, ref: Any, summary: Summary) -> list[Record]:
    """Captions with exactly one positional mention, up to ``per_word`` per word, with counter captions."""
    by_word: dict[str, list[tuple[int, str, CocoImage, str]]] = defaultdict(list)
    for cid, text, im in _caption_pool(val):
        hits = find_positional(text)
        if not hits:
            continue
        if len(hits) > 1:
            summary.skip("pa", "more than one positional mention")
            continue
        word = hits[0].word
        if OPPOSITES.get(word) is None:
            summary.skip("pa", f"no opposite for {word!r}")
            continue
        counter = counter_caption(text, word)
        if counter is None or counter == text:
            summary.skip("pa", "no counter caption")
            continue
        by_word[word].append((cid, text, im, counter))
    rng = subset_rng(seed, "pa")
    out = []
    for word in [w for w in POSITIONAL_WORDS if w in by_word] + sorted(set(by_word) - set(POSITIONAL_WORDS)):
        for cid, text, im, counter in sample(by_word[word], per_word, rng):
            out.append(
                Record(id=str(cid), caption=text, reference=ref(im), positional_word=word, counter_caption=counter)
            )
    return out


def build_ca(val: CocoVal, n: int | None, seed: int, ref: Any, summary: Summary) -> list[Record]:
    """Captions whose every stated count equals the image's non-crowd instance count of that class."""
    eligible = []
    for cid, text, im in _caption_pool(val):
        counts = find_counts(text)
        if not counts:
            continue
        if any(im.counts.get(c, 0) != k for c, k in counts.items()):
            summary.skip("ca", "count disagrees with the instance annotations")
            continue
        labels = tuple(dict.fromkeys(m.name for m in find_classes(text)))
        eligible.append(
            Record(id=str(cid), caption=text, reference=ref(im), counts=dict(sorted(counts.items())), labels=labels)
        )
    return sample(eligible, n, subset_rng(seed, "ca"))


def build_soa(val: CocoVal, sizes: Sizes, seed: int, ref: Any, summary: Summary) -> list[Record]:
    """Per class (in COCO order): captions naming it whose image is annotated with it."""
    by_class: dict[str, list[Record]] = defaultdict(list)
    for cid, text, im in _caption_pool(val):
        labels = tuple(dict.fromkeys(m.name for m in find_classes(text)))
        for c in labels:
            if c not in CLASS_TO_INDEX:
                continue
            if c not in im.classes:
                summary.skip("soa", "class named but not annotated in the image")
                continue
            by_class[c].append(
                Record(id=f"{cid}_{CLASS_TO_INDEX[c]}", caption=text, reference=ref(im), category=c, labels=labels)
            )
    rng = subset_rng(seed, "soa")
    out: list[Record] = []
    for c in COCO_CLASSES:
        out += sample(by_class.get(c, []), sizes.soa_cap(c), rng)
    missing = [c for c in COCO_CLASSES if c not in by_class]
    if missing:
        summary.notes.append(
            f"soa: {len(missing)} class(es) without captions: {', '.join(missing[:10])}"
            + (" …" if len(missing) > 10 else "")
        )
    return out


def prepare_coco(
    coco_root: str | Path,
    out: str | Path,
    seed: int = 0,
    sizes: Sizes | Mapping[str, Any] | None = None,
    log: Log | None = print,
) -> dict[str, Path]:
    """Build and write ``<out>/{realism,rp,pa,ca,soa}.jsonl`` from COCO-2014 val; returns subset → path.

    Byte-deterministic for a given (inputs, ``seed``, ``sizes``, ``out``); ``log`` gets the summary
    (records per subset, skips with reasons); pass ``log=None`` to stay silent.
    """
    sz = Sizes.from_any(sizes)
    out = Path(out)
    summary = Summary()
    val = load_coco_val(coco_root, summary)
    used: set[Path] = set()

    def ref(im: CocoImage) -> str:
        p = val.image_dir / im.file_name
        used.add(p)
        return reference_path(p, out)

    subsets = {
        "realism": build_realism(val, sz.realism, seed, ref),
        "rp": build_rp(val, sz.rp, sz.rp_distractors, seed, ref),
        "pa": build_pa(val, sz.pa_per_word, seed, ref, summary),
        "ca": build_ca(val, sz.ca, seed, ref, summary),
        "soa": build_soa(val, sz, seed, ref, summary),
    }
    missing = sum(1 for p in used if not p.is_file())
    if missing:
        summary.notes.append(
            f"{missing} of {len(used)} referenced images are not under {val.image_dir} "
            f"(needed for FID / reference metrics; unzip val2014.zip there)"
        )
    return write_subsets(out, subsets, seed, summary, log)
