"""What makes a metric value comparable, and whether it follows TISE's published protocol (issue 9).

Every metric entry of ``metrics.json`` gets:

* ``protocol`` — ``"tise"`` when the value is computed exactly as TISE's release computes it (same network,
  weights, thresholds, temperature, candidate set, split procedure), otherwise the divergences joined by
  ``"; "``, each named as ``what=ours (TISE: theirs)``. Metrics that TISE does not define say which
  reference they follow instead (``"not in TISE; follows torch-fidelity"``).
* ``comparability`` — a flat dict of everything that changes the value: the namespace (ident, weights hash,
  preprocessing, precision) of every network the metric reads, the metric's parameters, the values the metric
  reports having used (convention, prefix, temperature, threshold, classifier, fallback), the crop rule, the
  reference source, the eval set's content hash, the unit and the protocol. Two values are comparable when
  their ``comparability`` dicts are equal; the leaderboard refuses to rank them otherwise.

TISE's settings below are read from its code (VinAIResearch/tise-toolbox): CLIP ViT-B/32 ``openai`` for RP
and PA (``clip.load("ViT-B/32")``), PA threshold 0.6, detectron2 Mask R-CNN R50-FPN 3x at score 0.5 for SOA
and the object crops, a COCO-80 fine-tuned Inception-v3 with T = 2.1737587451934814 for O-IS and its pool3
for O-FID, IS* with the TF 2015-12-05 Inception (the weights of inception-v3-compat) and T =
0.9091363549232483 over 10 contiguous splits, a CountSeg counter for CA, DAMSM encoders for CUB's RP, and a
bird-fine-tuned Inception with T = 0.5980541706085205 for CUB's IS*.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backbones.base import file_sha256
from .backbones.object_classifier import TISE_OBJECT_TEMPERATURE
from .metrics.inception import BIRD_TEMPERATURE, COCO_TEMPERATURE
from .registry import reference_images_or_stats
from .types import MetricValue

if TYPE_CHECKING:  # pragma: no cover
    from .evalset import EvalSet
    from .features.bank import CropRequest
    from .results import EvalResult

TISE = "tise"
TISE_CLIP_IDENT = "clip-ViT-B-32-openai"
TISE_COCO_T = COCO_TEMPERATURE
TISE_OBJECT_T = TISE_OBJECT_TEMPERATURE
TISE_BIRD_T = BIRD_TEMPERATURE
TISE_DETECTOR = "detectron2 Mask R-CNN R50-FPN 3x"
#: extras a metric reports that change its value (copied into ``comparability``)
_EXTRA_KEYS = (
    "convention",
    "prefix",
    "temperature",
    "threshold",
    "classifier",
    "fallback",
    "split_mode",
    "network",
    "feature",
    "empty_images",
    "aggregation",
)
#: parameters that never change the value
_IGNORED_PARAMS = {"subset"}


def _backbone_of_needs(needs, backbones: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for n in needs:
        if n.backbone == "crops":
            names += ["detector", "inception"] + (["object_classifier"] if "object_classifier" in backbones else [])
        else:
            names.append(n.backbone)
    return [b for b in dict.fromkeys(names) if b in backbones]


def _inception_resize(backbones: Mapping[str, Any]) -> list[str]:
    """``backbones.inception.resize=clean`` (clean-fid's resize) as a divergence; [] for torch-fidelity's default."""
    if getattr(backbones.get("inception"), "resize", "torch_fidelity") == "clean":
        return ["inception resize=clean-fid PIL bicubic on float32 (default: torch-fidelity TF1-compatible bilinear)"]
    return []


def _clip_divergence(backbones: Mapping[str, Any]) -> list[str]:
    clip = backbones.get("clip")
    if clip is None:
        return []
    ident = getattr(clip, "ident", "?")
    if getattr(clip, "is_random", False) or ident != TISE_CLIP_IDENT:
        return [f"clip={ident} (TISE: ViT-B/32 openai)"]
    return []


def detector_label(backbones: Mapping[str, Any]) -> str | None:
    """Human name of the detector that produced the detections (imported ones say what made them)."""
    det = backbones.get("detector")
    if det is None:
        return None
    d = det.describe() if hasattr(det, "describe") else {}
    return str(d.get("detector") or d.get("weights") or getattr(det, "ident", "detector"))


def _detector_divergence(backbones: Mapping[str, Any], threshold: float | None) -> list[str]:
    det = backbones.get("detector")
    if det is None:
        return []
    out = []
    label = detector_label(backbones) or "?"
    norm = "".join(ch for ch in label.lower() if ch.isalnum())
    if getattr(det, "is_random", False) or not ("maskrcnn" in norm and "r50fpn" in norm):
        out.append(f"detector={label} (TISE: {TISE_DETECTOR})")
    if threshold is not None and abs(float(threshold) - 0.5) > 1e-12:
        out.append(f"threshold={threshold:g} (TISE: 0.5)")
    return out


def _close(a: Any, b: float) -> bool:
    try:
        return abs(float(a) - b) <= 1e-12
    except (TypeError, ValueError):
        return False


def tise_divergences(
    metric_id: str,
    params: Mapping[str, Any],
    mv: MetricValue,
    backbones: Mapping[str, Any],
    *,
    domain: str | None = None,
    crop_spec: Any = None,
) -> list[str] | str:
    """-> the divergences from TISE's protocol for one metric value (``[]`` = TISE exactly), or a string
    naming the reference for metrics TISE does not define."""
    ex = mv.extras or {}
    rand = [b for b, bb in backbones.items() if getattr(bb, "is_random", False)]
    out: list[str] = [f"random-weights {','.join(sorted(rand))}"] if rand else []
    cub = (domain or "").lower() == "cub"
    if metric_id in ("clip_score", "ref_clip_score"):
        conv = ex.get("convention", params.get("convention", "clipscore"))
        ref = {"clipscore": "jmhessel/clipscore", "torchmetrics": "torchmetrics CLIPScore"}.get(str(conv), str(conv))
        return f"not in TISE; follows {ref}"
    if metric_id == "clip_i2i":
        return "not in TISE; cosine of CLIP image embeddings"
    if metric_id == "is":
        return "; ".join(["not in TISE (TISE reports IS*); follows torch-fidelity", *_inception_resize(backbones)])
    if metric_id == "fid":
        return "; ".join(
            [
                "not comparable to TISE's FID: torch-fidelity inception-v3-compat pool3 "
                "(TISE: torchvision ImageNet Inception, non-standard normalisation)",
                *_inception_resize(backbones),
            ]
        )
    if metric_id == "fd_dinov2":
        return "not in TISE; follows layer6ai-labs/dgm-eval (DINOv2 CLS features)"
    if metric_id == "geneval" or metric_id.startswith("geneval_"):
        seg = backbones.get("segmenter")
        d = seg.describe() if seg is not None else {}
        label = f"GenEval protocol, {d.get('weights', '?')} + {d.get('clip', '?')}"
        return label + ("" if d.get("masks", True) else ", no masks") + (f"; {out[0]}" if out else "")
    if metric_id == "clip_fid":
        return "not in TISE; follows clean-fid CLIP-FID (unnormalised CLIP embeddings)"
    if metric_id in ("compbench_spatial", "compbench_numeracy"):  # the metric names its detector
        return str(ex.get("protocol") or "T2I-CompBench rules") + (f"; {out[0]}" if out else "")
    out += _inception_resize(backbones)  # IS*, O-IS / O-FID on Inception: TISE's resize is not clean-fid's
    if metric_id == "is_star":
        if cub:
            if ex.get("network") != "bird_classifier":
                out.append("network=inception-v3-compat (TISE CUB: bird-fine-tuned Inception)")
            if not _close(ex.get("temperature"), TISE_BIRD_T):
                out.append(f"temperature={ex.get('temperature')} (TISE CUB: {TISE_BIRD_T})")
        elif not _close(ex.get("temperature"), TISE_COCO_T):
            out.append(f"temperature={ex.get('temperature')} (TISE COCO: {TISE_COCO_T})")
        if ex.get("split_mode", "torch_fidelity") != "tise":
            out.append("splits=shuffled, torch-fidelity (TISE: 10 contiguous splits in file order)")
    elif metric_id == "clip_rp":
        if cub:
            out.append("encoders=CLIP (TISE CUB: DAMSM image/text encoders)")
        else:
            out += _clip_divergence(backbones)
        n, given = int(mv.n or 0), int(ex.get("n_with_mismatched", 0) or 0)
        if given < n:  # no counts here: the protocol must be the same string for every model of a sweep
            some = "" if given == 0 else " for some images"
            out.append(f"distractors drawn from the set{some} (TISE: released mismatched_captions)")
        if int(params.get("top_k", 1)) != 1:
            out.append(f"top_k={params.get('top_k')} (TISE: 1)")
    elif metric_id == "pa":
        out += _clip_divergence(backbones)
        if not _close(ex.get("threshold", params.get("threshold", 0.6)), 0.6):
            out.append(f"threshold={ex.get('threshold')} (TISE: 0.6)")
    elif metric_id in ("soa_c", "soa_i"):
        out += _detector_divergence(backbones, ex.get("threshold", params.get("threshold", 0.5)))
        if ex.get("empty_images", "fail") != "drop":
            out.append("images without any detection count as failures (TISE's code drops them)")
    elif metric_id == "ca":
        out += _detector_divergence(backbones, ex.get("threshold", params.get("threshold", 0.5)))
        out.append("counter=detector boxes (TISE: CountSeg)")
    elif metric_id in ("o_is", "o_fid"):
        out += _detector_divergence(backbones, getattr(crop_spec, "threshold", None))
        out += list(getattr(crop_spec, "tise_divergences", []) or [])
        if ex.get("fallback", True):
            out.append("classifier=inception-v3-compat fallback (TISE: COCO-80 fine-tuned Inception-v3)")
        if metric_id == "o_fid":
            out.append("every crop used (TISE's O-FID loader drops the last partial batch of 64 crops per side)")
        if metric_id == "o_is":
            if not ex.get("fallback", True) and not _close(ex.get("temperature"), TISE_OBJECT_T):
                out.append(f"temperature={ex.get('temperature')} (TISE: {TISE_OBJECT_T})")
            if ex.get("split_mode", "torch_fidelity") != "tise":
                out.append("splits=shuffled, torch-fidelity (TISE: contiguous splits of N//10)")
    else:
        return "not in TISE"
    return out


def protocol_string(div: list[str] | str) -> str:
    return div if isinstance(div, str) else ("; ".join(div) if div else TISE)


def records_hash(records: list) -> str:
    """Content hash of a subset's records (what they ask, not where the file lives): 16 hex digits."""
    h = hashlib.sha256()
    for r in records:
        d = r.__dict__ if hasattr(r, "__dict__") else dict(r)
        keep = {k: v for k, v in d.items() if k != "reference"}
        keep["reference"] = bool(d.get("reference"))
        h.update(json.dumps(keep, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def _fast_preprocessing(needs: Any, used: Mapping[str, Any], backbones: Mapping[str, Any]) -> list[str]:
    """What a metric read through ``backbones.preprocess=fast``: the backbones whose fast path changed their
    input, and ``crops`` (cut and resized by torch) when it read object crops under that mode."""
    out = [b for b, bb in used.items() if getattr(bb, "fast", False) is True]
    mode = {getattr(bb, "preprocess_mode", "exact") for bb in backbones.values()}
    if "fast" in mode and any(n.backbone == "crops" for n in needs):
        out.append("crops")
    return out


def comparability(
    metric_id: str,
    spec: Any,
    params: Mapping[str, Any],
    mv: MetricValue,
    backbones: Mapping[str, Any],
    *,
    domain: str | None = None,
    eval_set: str | None = None,
    crop_spec: Any = None,
    reference: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """-> (protocol, comparability fields) for one metric value."""
    needs = spec.needs_for(dict(params)) if hasattr(spec, "needs_for") else spec.needs
    used = {b: backbones[b] for b in _backbone_of_needs(needs, backbones)}  # only the networks this metric read
    protocol = protocol_string(tise_divergences(metric_id, params, mv, used, domain=domain, crop_spec=crop_spec))
    fast = _fast_preprocessing(needs, used, backbones)
    if fast:  # backbones.preprocess=fast: torch on the device instead of the reference tools' PIL
        note = f"preprocess=fast ({', '.join(fast)}: torch resize; reference: PIL)"
        protocol = note if protocol == TISE else f"{protocol}; {note}"
    # the metric's definition version: a definition change (bumped version) is never ranked against the old one
    fields: dict[str, Any] = {
        "unit": getattr(spec, "unit", None),
        "protocol": protocol,
        "version": getattr(spec, "version", None),
    }
    for b in used:
        if b == "object_classifier" and (mv.extras or {}).get("fallback", False):
            continue
        fields[f"backbone.{b}"] = getattr(backbones[b], "namespace", None)
    if any(n.backbone == "detector" or n.backbone == "crops" for n in needs):
        fields["detector"] = detector_label(backbones)
    for k, v in sorted(params.items()):
        if k not in _IGNORED_PARAMS:
            fields[f"param.{k}"] = _scalar(v)
    for k in _EXTRA_KEYS:
        if k in (mv.extras or {}):
            fields[k] = _scalar(mv.extras[k])
    if crop_spec is not None and any(n.backbone == "crops" for n in needs):
        fields["crops"] = crop_spec.tag
    if fast:  # only under fast: exact runs keep their fields (and stay comparable with earlier runs)
        fields["preprocess"] = "fast: " + ",".join(fast)
    if reference is not None and any(n.role == "ref" for n in needs):
        fields["reference"] = reference
    if eval_set is not None:  # records_hash of the subset, computed once per subset by the caller
        fields["eval_set"] = eval_set
    if domain:
        fields["domain"] = domain
    return protocol, fields


def eval_domain(evalset: EvalSet) -> str | None:
    """``coco`` / ``cub``: which of TISE's protocols applies, from ``data.domain`` (the one place it is set)."""
    return str(evalset.domain).lower() if evalset.domain else None


def _reference_source(evalset: EvalSet, recs: list, shas: list[str], row_of: dict[str, int], uses_stats: bool) -> str:
    """What a reference-based metric compared against: the stats file (hash + extractor) when the metric reads
    statistics and a file is given, else the reference images (KID, CLIP-I2I, O-FID always read images)."""
    if evalset.reference_stats and uses_stats:
        extractor = getattr(evalset, "reference_stats_extractor", None) or "tise_bench"
        return f"stats:{file_sha256(evalset.reference_stats)[:16]}:{extractor}"
    refs = [shas[row_of[r.reference]] for r in recs if r.reference and r.reference in row_of]
    return "images:" + hashlib.sha256(",".join(refs).encode()).hexdigest()[:16]


def record_comparability(
    result: EvalResult,
    chosen,
    params,
    metrics,
    backbones,
    evalset: EvalSet,
    crops: CropRequest | None,
    shas: list[str],
    row_of: dict[str, int],
) -> None:
    """``protocol`` and ``comparability`` of every metric entry (see :mod:`tise_bench.comparability`)."""
    domain = eval_domain(evalset)
    subset_hash: dict[str, str] = {}  # one content hash per subset, not per metric (30k records each)
    ref_source: dict[tuple[str, bool], str] = {}
    for spec, subset in chosen:
        mv = metrics.get(spec.id)
        if mv is None:
            continue
        recs = evalset.subsets[subset]
        if subset not in subset_hash:
            subset_hash[subset] = records_hash(recs)
        needs = spec.needs_for(params.get(spec.id))
        ref = None
        if any(n.role == "ref" for n in needs):
            uses_stats = getattr(spec.fn, "requires", None) is reference_images_or_stats  # FID-like metrics
            if (subset, uses_stats) not in ref_source:
                ref_source[subset, uses_stats] = _reference_source(evalset, recs, shas, row_of, uses_stats)
            ref = ref_source[subset, uses_stats]
        protocol, fields = comparability(
            spec.id,
            spec,
            dict(params.get(spec.id) or {}),
            mv,
            backbones,
            domain=domain,
            eval_set=subset_hash[subset],
            crop_spec=crops.spec if crops is not None else None,
            reference=ref,
        )
        result.meta.setdefault(spec.id, {}).update({"protocol": protocol, "comparability": fields})
