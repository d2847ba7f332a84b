"""GenEval (Ghosh et al. 2023): object-focused compositional scores with GenEval's own rules, on our segmenter.

Reference: djghosh13/geneval ``evaluation/evaluate_images.py`` (per-image verdict) and
``evaluation/summary_scores.py`` (aggregation); prompts ``prompts/evaluation_metadata.jsonl`` (records with
``tag``, ``include`` / ``exclude`` lists of ``{class, count[, color][, position: [relation, group index]]}``).
Step by step, as the reference does it (its defaults, all parameters here):

1. Keep boxes per class (the 80 classes of ``object_names.txt``): score ``> threshold`` (0.3), or ``>
   counting_threshold`` (0.9) when the prompt's tag is ``counting``; highest score first; the first
   ``max_objects`` (16); then a greedy overlap filter that drops boxes with IoU ``>= max_overlap`` with a kept
   one (``compute_iou``, boxes with the +1 pixel convention); the default 1.0 disables it.
2. ``include`` clauses (AND), in order: the class's first ``count`` kept boxes must exist ("expected
   {class}>={count}, found {n}"); with ``color``: each is classified by CLIP zero-shot over COLORS and at least
   ``count`` must have that colour; with ``position`` ``[relation, g]``: every found box must stand in
   ``relation`` to every box of include group ``g`` (``relative_position`` with ``position_threshold`` 0.1); a
   group that failed gives "no target". ``exclude`` clauses (OR): ``count`` or more kept boxes of the class fail.
   The verdict's reason is the reference's text, clause by clause.
3. Colour classifier (clip_benchmark ``zero_shot_classifier``): for each colour, the three templates
   ``a photo of a {c} {class}``, ``a photo of a {c}-colored {class}``, ``a photo of a {c} object`` are embedded
   and L2-normalised, averaged and re-normalised; the crop's L2-normalised embedding (the segmenter's masked
   crop, :mod:`tise_bench.backbones.segmenter`) is classified by the argmax of ``100 · image @ classifier``.
4. ``summary_scores.py``: a task score is the mean correctness of its images (``df.groupby('tag')``); the overall
   score is the unweighted mean of the task scores present. Values are fractions 0..1 (unit ``score``), as
   GenEval's tables (e.g. 0.35).

Per image, ``geneval``'s per-sample column is the correctness (1/0) and ``geneval_reason`` the reference's
failure text; each task id's column holds the correctness of its own images (empty for the others).

Differences (recorded in every metric's extras as ``protocol``): detections and masks come from the
``segmenter`` backbone (an ultralytics model; GenEval used mmdet's Mask2Former Swin-S), and its CLIP is
``backbones.segmenter.clip_model`` (default ViT-L-14/openai as GenEval) in fp32. Class names are GenEval's
(COCO's, with ``computer mouse``, ``tv remote``, ``computer keyboard``). GenEval evaluates 4 images per prompt;
every image found for a prompt is scored here. A box whose rounded crop is empty (GenEval's CLIP transform
would raise on it) has no colour ("none").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..errors import ConfigError, DataError
from ..registry import Need, register_metric
from ..text.coco_classes import COCO_CLASSES
from ..types import MetricValue

REFERENCE = "djghosh13/geneval evaluation/evaluate_images.py, evaluation/summary_scores.py"
CITATION = (
    "Ghosh et al. 2023, GenEval: An Object-Focused Framework for Evaluating Text-to-Image Alignment (NeurIPS D&B) "
    f"({REFERENCE})"
)
#: evaluate_images.py COLORS (also create_prompts.py's colours)
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
#: evaluate_images.py color_classification's templates; "{c}" is the colour
COLOR_TEMPLATES = ("a photo of a {{c}} {cls}", "a photo of a {{c}}-colored {cls}", "a photo of a {{c}} object")
#: GenEval's object_names.txt: the 80 COCO classes in order, three of them renamed
GENEVAL_RENAMES = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
GENEVAL_CLASSES = tuple(GENEVAL_RENAMES.get(c, c) for c in COCO_CLASSES)
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS = ("left of", "right of", "above", "below")
DETS, CROP_EMB, CROP_FLAG, TEXT = "segmenter.detections", "segmenter.crop_image", "segmenter.crop", "segmenter"


@dataclass(frozen=True)
class GenEvalParams:
    threshold: float = 0.3  # THRESHOLD (boxes kept at score > 0.3)
    counting_threshold: float = 0.9  # COUNTING_THRESHOLD, for tag 'counting'
    max_objects: int = 16  # MAX_OBJECTS per class
    max_overlap: float = 1.0  # NMS_THRESHOLD ('max_overlap'); 1.0 = no overlap filter
    position_threshold: float = 0.1  # POSITION_THRESHOLD (relative_position's margin)


# ---- the rules, as pure functions ------------------------------------------------------------------------------
def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """evaluate_images.py ``compute_iou`` (pixel-inclusive areas: +1)."""

    def area(b: Sequence[float]) -> float:
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    i = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    u = area(box_a) + area(box_b) - i
    return i / u if u else 0


def relative_position(box_a: Any, box_b: Any, threshold: float = 0.1) -> set[str]:
    """evaluate_images.py ``relative_position``: relations of A to B, with a margin of ``threshold`` x the summed
    box sides."""
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def keep_objects(dets: np.ndarray, threshold: float, max_objects: int, max_overlap: float) -> dict[int, list[int]]:
    """evaluate_image's box selection: class id -> kept rows of ``dets``, highest score first."""
    dets = np.asarray(dets)
    out: dict[int, list[int]] = {}
    for c in sorted({int(x) for x in dets[dets[:, 4] > threshold, 5]}):
        rows = np.flatnonzero((dets[:, 5] == c) & (dets[:, 4] > threshold))
        order = rows[np.argsort(-dets[rows, 4], kind="stable")][:max_objects].tolist()
        kept = []
        while order:
            top = order.pop(0)
            kept.append(top)
            order = [o for o in order if max_overlap == 1 or compute_iou(dets[top], dets[o]) < max_overlap]
        out[c] = kept
    return out


def color_classifier(text_emb: np.ndarray) -> np.ndarray:
    """clip_benchmark ``zero_shot_classifier``: ``text_emb`` (n_colors, n_templates, D), each row L2-normalised ->
    (D, n_colors): the mean template embedding of each colour, re-normalised."""
    e = np.asarray(text_emb, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    w = e.mean(axis=1)
    return (w / np.linalg.norm(w, axis=-1, keepdims=True)).T


def classify_colors(crop_emb: np.ndarray, classifier: np.ndarray) -> list[str]:
    """run_classification + ``pred.argmax(1)``: the colour of each crop embedding."""
    x = np.asarray(crop_emb, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)
    return [COLORS[i] for i in (100.0 * x @ classifier).argmax(axis=1)]


def evaluate(
    objects: dict[str, list[np.ndarray]], spec: dict[str, Any], colors_of, threshold: float = 0.1
) -> tuple[bool, str]:
    """evaluate_images.py ``evaluate``: ``objects`` class name -> kept boxes (score-sorted rows), ``spec`` the
    record's include/exclude, ``colors_of(boxes, classname)`` -> their colours. -> (correct, reason)."""
    correct, reason = True, []
    groups: list[list[np.ndarray] | None] = []
    for req in spec.get("include", []):
        cls, n = req["class"], req["count"]
        matched = True
        found = objects.get(cls, [])[:n]
        if len(found) < n:
            correct = matched = False
            reason.append(f"expected {cls}>={n}, found {len(found)}")
        else:
            if "color" in req:
                colors = colors_of(found, cls)
                if colors.count(req["color"]) < n:
                    correct = matched = False
                    reason.append(
                        f"expected {req['color']} {cls}>={n}, found {colors.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    )
            if "position" in req and matched:
                rel, target = req["position"]
                if groups[target] is None:
                    correct = matched = False
                    reason.append(f"no target for {cls} to be {rel}")
                else:
                    for obj in found:
                        for tgt in groups[target]:
                            true_rels = relative_position(obj, tgt, threshold)
                            if rel not in true_rels:
                                correct = matched = False
                                reason.append(f"expected {cls} {rel} target, found {' and '.join(true_rels)} target")
                                break
                        if not matched:
                            break
        groups.append(found if matched else None)
    for req in spec.get("exclude", []):
        cls = req["class"]
        if len(objects.get(cls, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {cls}<{req['count']}, found {len(objects[cls])}")
    return correct, "\n".join(reason)


def summarize(tags: Sequence[str], correct: Any) -> dict[str, Any]:
    """summary_scores.py: task score = mean correctness per tag; overall = mean of the task scores."""
    per: dict[str, list[bool]] = {}
    for t, c in zip(tags, correct):
        per.setdefault(t, []).append(bool(c))
    tasks = {t: float(np.mean(v)) for t, v in per.items()}
    return {
        "tasks": tasks,
        "n_per_task": {t: len(v) for t, v in per.items()},
        "overall": float(np.mean(list(tasks.values()))) if tasks else float("nan"),
    }


# ---- records --------------------------------------------------------------------------------------------------
def record_spec(rec: Record) -> dict[str, Any]:
    """The record's GenEval metadata (``tag``, ``include``, ``exclude``), checked; DataError names the record."""
    e = rec.extra

    def bad(msg: str) -> DataError:
        return DataError(f"geneval record {rec.id!r}: {msg} (format: GenEval's evaluation_metadata.jsonl)")

    tag, inc, exc = e.get("tag"), e.get("include"), e.get("exclude", [])
    if tag not in TASKS:
        raise bad(f"'tag' must be one of {', '.join(TASKS)}, got {tag!r}")
    if not isinstance(inc, list) or not inc or not isinstance(exc, list):
        raise bad("'include' must be a non-empty list (and 'exclude' a list) of {class, count, ...} objects")
    for i, req in enumerate(inc + exc):
        if not isinstance(req, dict) or req.get("class") not in GENEVAL_CLASSES:
            raise bad(f"clause {req!r}: 'class' must be one of GenEval's 80 object names")
        n = req.get("count")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise bad(f"clause {req!r}: 'count' must be an integer >= 1")
        if "color" in req and req["color"] not in COLORS:
            raise bad(f"clause {req!r}: 'color' must be one of {', '.join(COLORS)}")
        if "position" in req:
            p = req["position"]
            ok = isinstance(p, (list, tuple)) and len(p) == 2 and p[0] in RELATIONS
            if not ok or isinstance(p[1], bool) or not isinstance(p[1], int) or not 0 <= p[1] < min(i, len(inc)):
                raise bad(f"clause {req!r}: 'position' must be [relation, index of an earlier include clause]")
    return {"tag": tag, "include": inc, "exclude": exc}


def requires_geneval(records: list, evalset: Any = None, params: dict[str, Any] | None = None) -> str | None:
    if not any("include" in r.extra for r in records):
        return "no record carries GenEval metadata (tag/include); prepare it with python -m tise_bench.prepare data=geneval"
    for r in records:
        record_spec(r)
    return None


def texts_needed(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """The colour templates for every class that a colour clause names (clip_benchmark formats ``{c}``)."""
    classes = {q["class"] for r in records for q in r.extra.get("include", []) if isinstance(q, dict) and "color" in q}
    return [t.format(cls=cls).format(c=c) for cls in sorted(classes) for c in COLORS for t in COLOR_TEMPLATES]


# ---- per image --------------------------------------------------------------------------------------------------
def judge(ctx: MetricContext, params: dict[str, Any]) -> tuple[list[str], np.ndarray, list[str]]:
    """Every sample's (tag, correct, reason), GenEval's rules on the segmenter's detections and colour crops."""
    dets, emb, flag = ctx.gen(DETS), ctx.gen(CROP_EMB), ctx.gen(CROP_FLAG)
    classifiers: dict[str, np.ndarray] = {}

    def classifier(cls: str) -> np.ndarray:
        if cls not in classifiers:
            texts = [t.format(cls=cls).format(c=c) for c in COLORS for t in COLOR_TEMPLATES]
            e = ctx.text(texts, backbone=TEXT).reshape(len(COLORS), len(COLOR_TEMPLATES), -1)
            classifiers[cls] = color_classifier(e)
        return classifiers[cls]

    tags, ok, why = [], np.zeros(len(ctx.samples)), []
    for j, s in enumerate(ctx.samples):
        spec = record_spec(ctx.records[s.record_index])
        thr = params["counting_threshold"] if spec["tag"] == "counting" else params["threshold"]
        kept = keep_objects(dets[j], thr, params["max_objects"], params["max_overlap"])
        rows = {GENEVAL_CLASSES[c]: r for c, r in kept.items()}
        objects = {name: [dets[j][r] for r in rr] for name, rr in rows.items()}

        def colors_of(found: list[np.ndarray], cls: str, j: int = j, rows: dict = rows) -> list[str]:
            rr = rows[cls][: len(found)]
            if np.any(flag[j][rr] == 0):
                raise ConfigError(
                    "geneval: a box used for a colour has no crop embedding (score <= backbones.segmenter.conf or "
                    "past crop_max_per_class); keep metrics.params threshold >= the segmenter's conf"
                )
            got = classify_colors(emb[j][rr], classifier(cls))
            return [c if f > 0 else "none" for c, f in zip(got, flag[j][rr])]  # empty crop: no colour

        c, r = evaluate(objects, spec, colors_of, params["position_threshold"])
        tags.append(spec["tag"])
        ok[j] = float(c)
        why.append(r)
    return tags, ok, why


def _protocol(ctx: MetricContext, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocol": f"GenEval protocol, {ctx.extra.get('segmenter') or 'segmenter backbone'}",
        "protocol_note": "GenEval used mmdet Mask2Former (Swin-S) and open_clip ViT-L-14/openai under autocast",
        "reference_code": REFERENCE,
        "rules": dict(params),
        "colors": list(COLORS),
        "color_templates": [t.replace("{{c}}", "{c}").replace("{cls}", "<class>") for t in COLOR_TEMPLATES],
    }


def _task_metric(task: str):
    def compute(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
        tags, ok, _ = judge(ctx, params)
        rows = np.flatnonzero(np.asarray(tags) == task)
        extras = {**_protocol(ctx, params), "task": task, "aggregation": "mean correctness of the task's images"}
        if rows.size == 0:
            return MetricValue(float("nan"), 0, extras={**extras, "reason": f"no {task} images"})
        per = np.full(len(ok), np.nan)
        per[rows] = ok[rows]
        return MetricValue(
            float(ok[rows].mean()),
            int(rows.size),
            std=float(ok[rows].std()),
            per_sample=per,
            extras={**extras, "n_correct": int(ok[rows].sum())},
            resample=ctx.mean_resampler(ok[rows], rows=rows),
        )

    compute.__doc__ = (
        f"GenEval {task} (evaluate_images.py rules on the segmenter's detections): the fraction of the task's "
        f"images judged correct (summary_scores.py)"
    )
    compute.texts_needed = texts_needed  # type: ignore[attr-defined]
    compute.requires = requires_geneval  # type: ignore[attr-defined]
    return compute


NEEDS = (
    Need("segmenter", "detections", "gen"),
    Need("segmenter", "crop_image", "gen"),
    Need("segmenter", "crop", "gen"),
    Need("segmenter", "text", "text"),
)
_COMMON = dict(higher_is_better=True, version="1", subset="geneval", unit="score", citation=CITATION, needs=NEEDS)

for _task in TASKS:
    register_metric(f"geneval_{_task}", display=f"GenEval {_task}", params=GenEvalParams, **_COMMON)(  # type: ignore[arg-type]
        _task_metric(_task)
    )


@register_metric("geneval", display="GenEval", params=GenEvalParams, **_COMMON)  # type: ignore[arg-type]
def compute_geneval(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """GenEval overall (summary_scores.py): the unweighted mean over tasks of the fraction of correct images."""
    tags, ok, why = judge(ctx, params)
    summary = summarize(tags, ok)
    extras = {**_protocol(ctx, params), "tasks": summary["tasks"], "n_per_task": summary["n_per_task"]}
    extras["aggregation"] = "mean over tasks of the task's mean image correctness (summary_scores.py)"
    extras["correct_images"] = float(ok.mean())
    return MetricValue(
        summary["overall"],
        len(ok),
        per_sample=ok,
        extras=extras,
        resample=ctx.mean_resampler(ok, groups=tags),
        sample_notes={"reason": np.asarray(why, dtype=object)},
    )


compute_geneval.texts_needed = texts_needed  # type: ignore[attr-defined]
compute_geneval.requires = requires_geneval  # type: ignore[attr-defined]
