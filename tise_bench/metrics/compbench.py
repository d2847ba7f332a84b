"""T2I-CompBench 2D-spatial and numeracy scores (Huang et al. 2023) on the run's detections.

Reference: ``Karine-Huang/T2I-CompBench``, ``UniDet_eval/2D_spatial_eval.py`` (``compbench_spatial``) and
``UniDet_eval/numeracy_eval.py`` (``compbench_numeracy``), reproduced rule by rule below; every constant is
theirs and is pinned in ``tests/metrics/test_compbench.py``.

Detections (both scripts): UniDet boxes with score > 0.5 (``--confidence-threshold`` default 0.5 in
``experts/model_bank.py``, detectron2 keeps ``scores > thresh``), in detectron2's output order (score
descending), in the pixels of the image UniDet saw: ``transforms.Resize(size=479, max_size=480)``. Our boxes
are in original pixels, so they are first scaled to that frame (:func:`unidet_frame`): the pixel constants
(150 px, the +1 of the box areas) keep their meaning on any image size.

2D spatial, per image (``determine_position`` and ``main``):

* relation = the first of :data:`SPATIAL_RELATIONS` (in that order) that is a substring of the prompt;
  object A = the first noun, object B = the last noun (spaCy ``en_core_web_sm``, ``pos_ == 'NOUN'``);
  ``girl``/``boy``/``man``/``woman`` → ``person``;
* the detection of a class used is the first one in output order (``obj.index``: the highest-scoring);
* both found: ``0.25·s_A + 0.25·s_B + position/2``; only one found: ``0.25·s`` (hence 0); neither: 0; then
  any score < 0.5 becomes 0;
* position from box centres, ``dx = cx_B − cx_A``, ``dy = cy_B − cy_A`` (image y grows downwards) and the IoU:
  ``next to`` / ``on side of`` / ``near``: 1 if ``|dx| < 150`` or ``|dy| < 150`` else ``150 / max(|dx|, |dy|)``;
  ``on the left of``: needs ``dx > 0`` and ``|dx| > |dy|``, then 1 if IoU < 0.1 else ``0.1 / IoU``; ``on the
  right of``: ``dx < 0``, same; ``on the top of``: ``dy > 0`` and ``|dy| > |dx|``; ``on the bottom of``:
  ``dy < 0``; anything else (``on top of`` is in the vocabulary but has no rule) scores 0.

Numeracy, per image:

* tokens (spaCy's tokenizer); for each token in :data:`NUMBER_WORDS` followed by a noun of CompBench's
  ``examples/dataset/new_objects.txt`` (:data:`NEW_OBJECTS`, singular or plural): ``a``/``an``/``one`` +
  singular → (noun, 1), otherwise (singular of the noun, ``w2n.word_to_num(word)``);
* aliases :data:`NUMERACY_ALIASES`; detections of one class overlapping an earlier kept one by IoU > 0.9 or
  covering > 0.9 of either box (areas with the +1 pixel convention) are dropped as duplicates;
* a noun that is no detected class name but a substring of one renames those detections (``"phone"`` in
  ``"cell phone"``), then: found → ``+0.5/n``, and the number of its detections equals the prompt's → another
  ``+0.5/n`` (n = nouns parsed); the image score is the sum, the metric the mean over images.

What differs from CompBench, on purpose or by necessity (also in ``metrics.json`` under ``differences``):

* the detector is the run's (COCO-80 ultralytics, or imported detections), not UniDet (a 700-class unified
  label space; spatial used its RS200 model, numeracy its R50). Prompts naming a noun that is not one of the
  detector's class names (after CompBench's own aliases) cannot be scored: they are skipped and counted
  (``skipped.noun_not_in_detector``), never scored 0. The protocol reads "T2I-CompBench rules, <detector>";
* no spaCy model (``en_core_web_sm`` is not installable from a package registry): a record's ``compbench``
  field (written by ``python -m tise_bench.prepare data=compbench``) gives objects, relation and counts;
  without it the caption is parsed with CompBench's rules for its own prompt templates
  (:mod:`tise_bench.text.compbench`: ``a|an <A> <relation> a|an <B>``, every line of its spatial files;
  words and single punctuation marks, as spaCy splits CompBench's numeracy prompts);
  other captions are skipped and counted (``skipped.caption_not_parsed``);
* a numeracy prompt whose parse leaves a noun without a number (``a`` + a plural: ``w2n`` raises and the
  reference's lists fall out of step) is skipped and counted (``skipped.count_not_parsed``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from ..context import MetricContext
from ..errors import DataError
from ..registry import Need, register_metric
from ..text.compbench import (
    NUMERACY_ALIASES,
    PERSON_WORDS,
    SPATIAL_RELATIONS,
    parse_numeracy,
    parse_spatial,
    tokenize,
)
from ..types import MetricValue

CITATION = "Huang et al. 2023, T2I-CompBench: A Comprehensive Benchmark for Open-world Compositional Text-to-image Generation (NeurIPS)"
REFERENCE = "Karine-Huang/T2I-CompBench UniDet_eval/{}"
DETS, SIZE = "detector.detections", "detector.size"
FIELD = "compbench"  # the manifest record's structured field

# --- constants of the reference scripts -------------------------------------------------------------------
NEAR_RELATIONS = ("next to", "on side of", "near")
IOU_THRESHOLD = 0.1  # determine_position(iou_threshold=0.1)
DISTANCE_THRESHOLD = 150.0  # determine_position(distance_threshold=150), UniDet-frame pixels
SCORE_FLOOR = 0.5  # "if (score<0.5): score=0"
CONFIDENCE = 0.5  # model_bank.py --confidence-threshold default (detectron2: scores > thresh)
UNIDET_RESIZE = (479, 480)  # transforms.Resize(size=479, max_size=480) before UniDet
DUPLICATE_OVERLAP = 0.9  # calculate_iou: IoU or either coverage > 0.9 -> the same object
Box = Sequence[float]  # x1, y1, x2, y2


# --- the image frame UniDet saw ----------------------------------------------------------------------------
def unidet_frame(width: float, height: float) -> tuple[int, int]:
    """(w, h) after ``torchvision.transforms.Resize(size=479, max_size=480)`` (its output-size arithmetic)."""
    w, h = int(width), int(height)
    size, max_size = UNIDET_RESIZE
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    if new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if w <= h else (new_long, new_short)


def kept_detections(
    dets: np.ndarray, size: Sequence[float], names: dict[int, str], confidence: float = CONFIDENCE
) -> tuple[list[str], list[Box], list[float]]:
    """One image's rows -> (class names, boxes in the UniDet frame, scores) of the boxes scoring > confidence,
    in row order (score descending, as detectron2 returns them)."""
    keep = dets[dets[:, 4] > confidence]
    w, h = float(size[0]), float(size[1])
    nw, nh = unidet_frame(w, h)
    boxes = keep[:, :4].astype(np.float64) * np.array([nw / w, nh / h, nw / w, nh / h])
    return (
        [names[int(c)] for c in keep[:, 5]],
        [tuple(b) for b in boxes.tolist()],
        keep[:, 4].astype(np.float64).tolist(),
    )


# --- 2D spatial --------------------------------------------------------------------------------------------
def determine_position(
    locality: str | None,
    box1: Box,
    box2: Box,
    iou_threshold: float = IOU_THRESHOLD,
    distance_threshold: float = DISTANCE_THRESHOLD,
) -> float:
    """2D_spatial_eval.py ``determine_position``: how well box1 (object A) stands ``locality`` box2 (B)."""
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]
    x_overlap = max(0.0, min(box1[2], box2[2]) - max(box1[0], box2[0]))
    y_overlap = max(0.0, min(box1[3], box2[3]) - max(box1[1], box2[1]))
    inter = x_overlap * y_overlap
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    iou = inter / union

    def clear(along: float, across: float) -> float:
        if abs(along) > abs(across):
            return 1.0 if iou < iou_threshold else iou_threshold / iou
        return 0.0

    if locality in NEAR_RELATIONS:
        if abs(dx) < distance_threshold or abs(dy) < distance_threshold:
            return 1.0
        return distance_threshold / max(abs(dx), abs(dy))
    if locality == "on the right of":
        return clear(dx, dy) if dx < 0 else 0.0
    if locality == "on the left of":
        return clear(dx, dy) if dx > 0 else 0.0
    if locality == "on the bottom of":
        return clear(dy, dx) if dy < 0 else 0.0
    if locality == "on the top of":
        return clear(dy, dx) if dy > 0 else 0.0
    return 0.0


def spatial_score(
    obj_a: str,
    relation: str,
    obj_b: str,
    names: Sequence[str],
    boxes: Sequence[Box],
    scores: Sequence[float],
    iou_threshold: float = IOU_THRESHOLD,
    distance_threshold: float = DISTANCE_THRESHOLD,
) -> float:
    """2D_spatial_eval.py's per-image score from one image's kept detections (names, boxes, scores)."""
    a = "person" if obj_a in PERSON_WORDS else obj_a
    b = "person" if obj_b in PERSON_WORDS else obj_b
    names = list(names)
    if a in names and b in names:
        i, j = names.index(a), names.index(b)
        score = 0.25 * scores[i] + 0.25 * scores[j]
        score += determine_position(relation, boxes[i], boxes[j], iou_threshold, distance_threshold) / 2
    elif a in names:
        score = 0.25 * scores[names.index(a)]
    elif b in names:
        score = 0.25 * scores[names.index(b)]
    else:
        score = 0.0
    return 0.0 if score < SCORE_FLOOR else float(score)


# --- numeracy ----------------------------------------------------------------------------------------------
def same_object(b1: Box, b2: Box) -> bool:
    """numeracy_eval.py ``calculate_iou``: IoU > 0.9 or > 0.9 of either box covered (+1 pixel areas)."""
    inter = max(0.0, min(b1[2], b2[2]) - max(b1[0], b2[0]) + 1) * max(0.0, min(b1[3], b2[3]) - max(b1[1], b2[1]) + 1)
    a1 = (b1[2] - b1[0] + 1) * (b1[3] - b1[1] + 1)
    a2 = (b2[2] - b2[0] + 1) * (b2[3] - b2[1] + 1)
    iou = inter / float(a1 + a2 - inter)
    return iou > DUPLICATE_OVERLAP or inter / float(a1) > DUPLICATE_OVERLAP or inter / float(a2) > DUPLICATE_OVERLAP


def deduplicate(names: Sequence[str], boxes: Sequence[Box]) -> list[str]:
    """Class names of the detections left after dropping same-class duplicates of earlier kept ones."""
    kept_names: list[str] = []
    kept_boxes: list[Box] = []
    for name, box in zip(names, boxes):
        if not any(same_object(box, kb) and name == kn for kn, kb in zip(kept_names, kept_boxes)):
            kept_names.append(name)
            kept_boxes.append(box)
    return kept_names


def numeracy_score(objects: Sequence[str], numbers: Sequence[int], names: Sequence[str], boxes: Sequence[Box]) -> float:
    """numeracy_eval.py's per-image score: Σ over the prompt's nouns of 0.5/n if found + 0.5/n if its
    deduplicated count equals the prompt's number."""
    if not objects or len(objects) != len(numbers):
        raise ValueError(f"numeracy_score: need as many numbers as nouns, got {list(objects)} / {list(numbers)}")
    found = deduplicate(names, boxes)
    weight = 1.0 / len(objects)
    score = 0.0
    for obj, num in zip(objects, numbers):
        obj = NUMERACY_ALIASES.get(obj, obj)
        if obj not in found:
            found = [obj if obj in d else d for d in found]  # substring relabel, kept for later nouns
        if obj in found:
            score += 0.5 * weight
            if found.count(obj) == num:
                score += 0.5 * weight
    return score


# --- records -> what to score ------------------------------------------------------------------------------
def _field(rec: Any, task: str) -> dict[str, Any] | None:
    """The record's structured ``compbench`` field for ``task`` (None: absent, or another task's)."""
    v = rec.extra.get(FIELD)
    if v is None:
        return None
    if not isinstance(v, dict) or v.get("task") not in ("spatial", "numeracy"):
        _bad(rec, v, "'task' must be spatial or numeracy")
    return v if v["task"] == task else None


def _bad(rec: Any, v: Any, why: str = "") -> NoReturn:
    raise DataError(
        f"record {rec.id!r}: field {FIELD!r} = {v!r} is not valid{': ' + why if why else ''}. Expected "
        f'{{"task": "spatial", "object_a": str, "relation": one of {list(SPATIAL_RELATIONS)}, "object_b": str}} '
        f'or {{"task": "numeracy", "objects": [str, ...], "numbers": [int, ...]}} (one number per object); '
        f"python -m tise_bench.prepare data=compbench writes it"
    )


def spatial_prompt(rec: Any) -> tuple[tuple[str, str, str] | None, str]:
    """(object A, relation, object B) of a record and where it came from (``field`` | ``caption``)."""
    f = _field(rec, "spatial")
    if f is None:
        return parse_spatial(rec.caption), "caption"
    a, r, b = f.get("object_a"), f.get("relation"), f.get("object_b")
    if not (isinstance(a, str) and a and isinstance(b, str) and b and r in SPATIAL_RELATIONS):
        _bad(rec, f)
    return (a, r, b), "field"


def numeracy_prompt(rec: Any) -> tuple[tuple[list[str], list[int]] | None, str]:
    """(nouns, numbers) of a record and where they came from (``field`` | ``caption``)."""
    f = _field(rec, "numeracy")
    if f is None:
        return parse_numeracy(tokenize(rec.caption)), "caption"
    objs, nums = f.get("objects"), f.get("numbers")
    if not (isinstance(objs, list) and isinstance(nums, list) and objs and len(objs) == len(nums)):
        _bad(rec, f, "objects and numbers must be non-empty lists of the same length")
    if not all(isinstance(o, str) and o for o in objs):
        _bad(rec, f, "objects must be non-empty strings")
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in nums):
        _bad(rec, f, "numbers must be non-negative integers")
    return (list(objs), list(nums)), "field"


def _class_names(ctx: MetricContext) -> dict[int, str]:
    names = ctx.extra.get("class_names")
    if not names:
        raise KeyError("detector class names missing from the metric context")
    return {int(i): str(n) for i, n in (names.items() if isinstance(names, dict) else enumerate(names))}


def _protocol(ctx: MetricContext) -> str:
    return f"T2I-CompBench rules, {ctx.extra.get('detector') or 'the run detector (metrics.json backbones.detector)'}"


_DIFFERENCES = [
    "detector: the run's (its class names) instead of UniDet's unified label space; prompts naming a noun "
    "outside the detector's classes are skipped and counted (skipped.noun_not_in_detector), not scored 0",
    "prompt parsing: the record's 'compbench' field, else CompBench's prompt template without spaCy "
    "(other captions: skipped.caption_not_parsed)",
    "boxes scaled from the image's pixels to the frame UniDet saw (Resize 479, max 480) before the pixel rules",
]


@dataclass(frozen=True)
class SpatialParams:
    confidence: float = CONFIDENCE  # UniDet's confidence threshold (a box counts if its score is > this)
    iou_threshold: float = IOU_THRESHOLD  # determine_position's IoU threshold
    distance_threshold: float = DISTANCE_THRESHOLD  # 'near' distance, pixels of the 479-px UniDet frame


@dataclass(frozen=True)
class NumeracyParams:
    confidence: float = CONFIDENCE  # UniDet's confidence threshold (a box counts if its score is > this)


def _run(ctx: MetricContext, task: str, params: dict[str, Any]) -> MetricValue:
    names = _class_names(ctx)
    known = set(names.values())
    dets, sizes = ctx.gen(DETS), ctx.gen(SIZE)
    per = np.full(len(ctx.samples), np.nan)
    skipped: Counter[str] = Counter()
    source: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for i, s in enumerate(ctx.samples):
        rec = ctx.records[s.record_index]
        got, src = spatial_prompt(rec) if task == "spatial" else numeracy_prompt(rec)
        if got is None:
            skipped["caption_not_parsed"] += 1
            continue
        if task == "spatial":
            a, rel, b = got  # type: ignore[misc]
            nouns = ["person" if o in PERSON_WORDS else o for o in (a, b)]
        else:
            objs, nums = got  # type: ignore[misc]
            if not objs:
                skipped["caption_not_parsed"] += 1
                continue
            if len(objs) != len(nums):
                skipped["count_not_parsed"] += 1
                continue
            nouns = [NUMERACY_ALIASES.get(o, o) for o in objs]
        out = [o for o in nouns if o not in known]
        if out:
            skipped["noun_not_in_detector"] += 1
            missing.update(out)
            continue
        source[src] += 1
        kn, kb, ks = kept_detections(dets[i], sizes[i], names, float(params["confidence"]))
        if task == "spatial":
            per[i] = spatial_score(
                a, rel, b, kn, kb, ks, float(params["iou_threshold"]), float(params["distance_threshold"])
            )
        else:
            per[i] = numeracy_score(objs, nums, kn, kb)
    vals = per[~np.isnan(per)]
    script = "2D_spatial_eval.py" if task == "spatial" else "numeracy_eval.py"
    return MetricValue(
        float(vals.mean()) if len(vals) else float("nan"),
        int(len(vals)),
        std=float(vals.std()) if len(vals) else None,
        per_sample=per,
        skipped=dict(skipped),
        resample=ctx.mean_resampler(per),
        extras={
            "protocol": _protocol(ctx),
            "reference": REFERENCE.format(script),
            "differences": _DIFFERENCES,
            "parsed_from": dict(sorted(source.items())),
            "nouns_not_in_detector": dict(missing.most_common(20)),
            **{k: float(v) for k, v in params.items() if k != "subset"},
        },
    )


@register_metric(
    "compbench_spatial",
    display="CompBench spatial",
    higher_is_better=True,
    version="1",
    subset="spatial",
    unit="score",
    citation=f"{CITATION}; code: {REFERENCE.format('2D_spatial_eval.py')}",
    params=SpatialParams,
    needs=(Need("detector", "detections", "gen"), Need("detector", "size", "gen")),
)
def compute_compbench_spatial(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """T2I-CompBench 2D-spatial score (0..1), mean over images: 0.25·(s_A + s_B) + position/2 when both objects
    are detected, 0 below 0.5; position from box centres and IoU (threshold 0.1; 'near' 150 px)."""
    return _run(ctx, "spatial", params)


@register_metric(
    "compbench_numeracy",
    display="CompBench numeracy",
    higher_is_better=True,
    version="1",
    subset="numeracy",
    unit="score",
    citation=f"{CITATION}; code: {REFERENCE.format('numeracy_eval.py')}",
    params=NumeracyParams,
    needs=(Need("detector", "detections", "gen"), Need("detector", "size", "gen")),
)
def compute_compbench_numeracy(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """T2I-CompBench numeracy score (0..1), mean over images: per noun named with a number, 0.5/n if detected
    and 0.5/n more if its count (same-class duplicates at 0.9 overlap dropped) equals the number."""
    return _run(ctx, "numeracy", params)


def _requires(task: str):
    def requires(records: list, evalset: Any = None, params: dict[str, Any] | None = None) -> str | None:
        parse = spatial_prompt if task == "spatial" else numeracy_prompt
        if any(parse(r)[0] for r in records):
            return None
        return (
            f"no record has a 'compbench' {task} field or a caption of CompBench's {task} template "
            f"(prepare the set with python -m tise_bench.prepare data=compbench)"
        )

    return requires


compute_compbench_spatial.requires = _requires("spatial")  # type: ignore[attr-defined]
compute_compbench_numeracy.requires = _requires("numeracy")  # type: ignore[attr-defined]
