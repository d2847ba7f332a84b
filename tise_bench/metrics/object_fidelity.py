"""Object-centric fidelity: O-IS and O-FID over detector crops (TISE, Dinh et al. 2022), SPEC §3.

The FeatureBank turns every detection at score ≥ threshold into a 299×299 crop and runs the crop
backbones on it; crops of all samples arrive concatenated as ``crops.*`` with ``crops.owner`` giving the
sample row of each crop. With TISE's COCO-80 object classifier configured
(``backbones.object_classifier.weights``) its outputs arrive as ``crops.objcls_logits`` / ``crops.objcls_pool3``:

* O-IS = IS over the crops' classifier logits with T = 2.1737587451934814 and TISE's split loop
  (``split_mode: tise``: 10 contiguous splits of N // 10 crops, remainder dropped, scipy entropy);
* O-FID = Fréchet distance between the classifier's pool3 features of generated and reference crops.

Without the classifier both fall back to inception-v3-compat (``logits_unbiased`` with T = 1, ``pool3``) and
say so: ``classifier``, ``fallback: true`` and a ``warning`` in the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backbones.object_classifier import TISE_OBJECT_TEMPERATURE
from ..context import MetricContext
from ..registry import MinComparable, Need, extra_count, n_count, register_metric
from ..types import MetricValue
from .inception import (
    FID_MIN_SAMPLES,
    IS_MIN_SPLIT_SIZE,
    FidReplicator,
    fid_statistics,
    inception_score,
    inception_score_tise_objects,
    reference_sqrt_of,
    split_mode,
    split_size,
)

_TISE = "Dinh et al. 2022, TISE: Bag of Metrics for Text-to-Image Synthesis Evaluation (ECCV)"
OBJ_LOGITS = "crops.objcls_logits"
OBJ_POOL3 = "crops.objcls_pool3"
TISE_CLASSIFIER = "tise-coco80-inception_v3"
FALLBACK_CLASSIFIER = "inception-v3-compat (fallback)"


def _fallback_warning(metric: str, what: str) -> str:
    return (
        f"TISE's COCO-80 object classifier was not provided (backbones.object_classifier.weights); "
        f"{metric} uses inception-v3-compat {what}: not comparable with TISE's {metric}"
    )


def _per_sample_counts(ctx: MetricContext) -> np.ndarray:
    """Crops per sample (O-IS/O-FID are set-level like IS/FID: no per-sample value is written)."""
    owner = ctx.gen("crops.owner").astype(np.int64)
    return np.bincount(owner, minlength=len(ctx.samples)).astype(float)


@dataclass(frozen=True)
class OISParams:
    splits: int = 10
    temperature: float = TISE_OBJECT_TEMPERATURE  # applies to TISE's object classifier only (fallback: T = 1)
    split_mode: str = "tise"  # tise: TISE's loop (N // splits crops per split, remainder dropped) | torch_fidelity
    seed: int = 2020  # split_mode torch_fidelity only


@register_metric(
    "o_is",
    display="O-IS",
    higher_is_better=True,
    version="2",
    subset="realism",
    unit="score",
    citation=_TISE,
    needs=(Need("crops", "logits_unbiased", "gen"), Need("crops", "owner", "gen")),
    params=OISParams,
    # TISE's O-IS splits the crops of its 30,000 COCO images in 10: at least IS's 2,933 crops per split (a lower
    # bound: TISE states no crop count, and most COCO images give more than one crop)
    min_comparable=(
        MinComparable("crops per split", IS_MIN_SPLIT_SIZE, split_size, "at least IS's split size (TISE: 10 splits)"),
    ),
)
def compute_o_is(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """O-IS = IS over object crops (TISE object classifier, T = 2.1737587451934814; else flagged fallback).
    Params: splits (10), temperature, split_mode (tise | torch_fidelity), seed (torch_fidelity only)."""
    per = _per_sample_counts(ctx)
    mode = split_mode(params, "o_is")
    splits = int(params["splits"])
    if OBJ_LOGITS in ctx.gen_features:
        logits, t, clf, fallback = ctx.gen(OBJ_LOGITS), float(params["temperature"]), TISE_CLASSIFIER, False
    else:
        logits, t, clf, fallback = ctx.gen("crops.logits_unbiased"), 1.0, FALLBACK_CLASSIFIER, True
    n = int(logits.shape[0])
    extras: dict[str, Any] = {
        "classifier": clf,
        "fallback": fallback,
        "temperature": t,
        "split_mode": mode,
        "n_crops": n,
        "n_images_without_crops": int((per == 0).sum()),
    }
    if fallback:
        extras["warning"] = _fallback_warning("O-IS", "logits")
    if n < 2:
        return MetricValue(float("nan"), n, extras={**extras, "reason": "fewer than 2 object crops"})
    if mode == "tise":
        if n < splits:
            return MetricValue(
                float("nan"),
                n,
                extras={
                    **extras,
                    "reason": f"{n} crops for {splits} splits: TISE's split loop uses N // splits crops per "
                    "split (lower metrics.params.o_is.splits or set split_mode=torch_fidelity)",
                },
            )
        mean, std, scores = inception_score_tise_objects(logits, temperature=t, splits=splits)
        extras.update(splits=splits, n_crops_used=splits * (n // splits))
    else:
        mean, std, scores = inception_score(logits, temperature=t, splits=splits, seed=int(params["seed"]))
        extras.update(splits=len(scores), n_crops_used=n)
    seed = int(params["seed"])

    def score(rows: np.ndarray) -> float:  # a replicate's crops, in the feature pass's order
        if mode == "tise":
            return (
                inception_score_tise_objects(logits[rows], temperature=t, splits=splits)[0]
                if len(rows) >= splits
                else math.nan
            )
        return inception_score(logits[rows], temperature=t, splits=splits, seed=seed)[0] if len(rows) >= 2 else math.nan

    return MetricValue(
        mean,
        n,
        std=std,
        extras={**extras, "split_scores": scores},
        resample=ctx.rows_resampler(score, "is", crops=True),
    )


@register_metric(
    "o_fid",
    display="O-FID",
    higher_is_better=False,
    version="2",
    subset="realism",
    unit="distance",
    citation=_TISE,
    needs=(Need("crops", "pool3", "gen"), Need("crops", "owner", "gen"), Need("crops", "pool3", "ref")),
    # the same Fréchet estimator on 2048-d pool3 features as FID: the same minimum per side, in crops
    min_comparable=(
        MinComparable("generated crops", FID_MIN_SAMPLES, n_count, "as FID: Heusel et al. 2017, at least 10,000"),
        MinComparable(
            "reference crops",
            FID_MIN_SAMPLES,
            extra_count("n_reference_crops"),
            "as FID: Heusel et al. 2017, at least 10,000",
        ),
    ),
)
def compute_o_fid(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """O-FID = FID between generated-image crops and reference-image crops on the pool3 features of TISE's
    object classifier (``crops.objcls_pool3``), or — without it — of inception-v3-compat (flagged fallback)."""
    per = _per_sample_counts(ctx)
    has_gen, has_ref = OBJ_POOL3 in ctx.gen_features, OBJ_POOL3 in ctx.ref_features
    if has_gen != has_ref:
        raise KeyError(
            f"O-FID: {OBJ_POOL3!r} was extracted for the "
            f"{'generated' if has_gen else 'reference'} crops only; both sides must use the same "
            "network (the object classifier must run on reference crops too)"
        )
    key, clf, fallback = (OBJ_POOL3, TISE_CLASSIFIER, False) if has_gen else ("crops.pool3", FALLBACK_CLASSIFIER, True)
    gen, ref = ctx.gen(key), ctx.ref(key)
    extras: dict[str, Any] = {
        "classifier": clf,
        "fallback": fallback,
        "feature": key,
        "n_crops": int(gen.shape[0]),
        "n_reference_crops": int(ref.shape[0]),
        "n_images_without_crops": int((per == 0).sum()),
    }
    if fallback:
        extras["warning"] = _fallback_warning("O-FID", "pool3 features")
    if gen.shape[0] < 2 or ref.shape[0] < 2:
        return MetricValue(
            float("nan"), int(gen.shape[0]), extras={**extras, "reason": "fewer than 2 object crops on one side"}
        )
    mu2, s2 = fid_statistics(ref)
    fid = FidReplicator(gen, mu2, s2, names=("generated crops", "reference crops"), sqrt_r=reference_sqrt_of(ctx, s2))
    return MetricValue(
        fid.point(), int(gen.shape[0]), extras=extras, resample=ctx.rows_resampler(fid, "fid", crops=True)
    )
