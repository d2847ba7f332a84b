"""Object-centric fidelity: O-IS and O-FID over detector crops (TISE, Dinh et al. 2022), SPEC §3.

The FeatureBank turns every detection at score ≥ threshold into a 299×299 crop and runs the crop
backbones on it; crops of all samples arrive concatenated as ``crops.*`` with ``crops.owner`` giving the
sample row of each crop. O-IS = IS over the crops with TISE's COCO-80 object classifier and
T = 2.1737587451934814, or — without that checkpoint — inception-v3-compat ``logits_unbiased`` with T = 1
(flagged ``fallback`` in the result). O-FID = FID between generated and reference crop pool3 features.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backbones.object_classifier import TISE_OBJECT_TEMPERATURE
from ..context import MetricContext
from ..registry import Need, register_metric
from ..types import MetricValue
from .inception import fid_statistics, frechet_distance, inception_score

_TISE = "Dinh et al. 2022, TISE: Bag of Metrics for Text-to-Image Synthesis Evaluation (ECCV)"
OBJ_LOGITS = "crops.objcls_logits"


def _per_sample_counts(ctx: MetricContext) -> np.ndarray:
    """Crops per sample (O-IS/O-FID are set-level like IS/FID: no per-sample value is written)."""
    owner = ctx.gen("crops.owner").astype(np.int64)
    return np.bincount(owner, minlength=len(ctx.samples)).astype(float)


@register_metric("o_is", display="O-IS", higher_is_better=True, version="1", subset="realism", citation=_TISE,
                 needs=(Need("crops", "logits_unbiased", "gen"), Need("crops", "owner", "gen")))
def compute_o_is(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """O-IS = IS over object crops (TISE object classifier, T = 2.1737587451934814; else flagged fallback)."""
    per = _per_sample_counts(ctx)
    if OBJ_LOGITS in ctx.gen_features:
        logits, t, clf, fallback = ctx.gen(OBJ_LOGITS), float(params.get("temperature", TISE_OBJECT_TEMPERATURE)), \
            "tise-coco80-inception_v3", False
    else:
        logits, t, clf, fallback = ctx.gen("crops.logits_unbiased"), 1.0, "inception-v3-compat (fallback)", True
    extras = {"classifier": clf, "fallback": fallback, "temperature": t, "n_crops": int(logits.shape[0]),
              "n_images_without_crops": int((per == 0).sum())}
    if fallback:
        extras["warning"] = ("TISE's COCO-80 object classifier was not provided "
                             "(backbones.object_classifier.weights); O-IS uses inception-v3-compat logits")
    if logits.shape[0] < 2:
        return MetricValue(float("nan"), int(logits.shape[0]),
                           extras={**extras, "reason": "fewer than 2 object crops"})
    mean, std, _ = inception_score(logits, temperature=t, splits=int(params.get("splits", 10)),
                                   seed=int(params.get("seed", 2020)))
    return MetricValue(mean, int(logits.shape[0]), std=std, extras=extras)


@register_metric("o_fid", display="O-FID", higher_is_better=False, version="1", subset="realism", citation=_TISE,
                 needs=(Need("crops", "pool3", "gen"), Need("crops", "owner", "gen"), Need("crops", "pool3", "ref")))
def compute_o_fid(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """O-FID = FID(pool3 of generated-image crops, pool3 of reference-image crops)."""
    per = _per_sample_counts(ctx)
    gen, ref = ctx.gen("crops.pool3"), ctx.ref("crops.pool3")
    extras = {"n_crops": int(gen.shape[0]), "n_reference_crops": int(ref.shape[0]),
              "n_images_without_crops": int((per == 0).sum())}
    if gen.shape[0] < 2 or ref.shape[0] < 2:
        return MetricValue(float("nan"), int(gen.shape[0]),
                           extras={**extras, "reason": "fewer than 2 object crops on one side"})
    mu1, s1 = fid_statistics(gen)
    mu2, s2 = fid_statistics(ref)
    return MetricValue(frechet_distance(mu1, s1, mu2, s2, names=("generated crops", "reference crops")),
                       int(gen.shape[0]), extras=extras)
