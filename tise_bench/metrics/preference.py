"""Human-preference and aesthetic scores: HPSv2 / HPSv2.1 and the LAION aesthetic predictor v2.

Pure functions over embeddings plus thin registered adapters; the networks live in the backbones
(:mod:`tise_bench.backbones.hps`, :mod:`tise_bench.backbones.aesthetic`), whose docstrings reproduce each
reference's pipeline step by step.

* ``hpsv2`` — tgxs002/HPSv2 ``hpsv2/img_score.py`` / ``hpsv2/evaluation.py``: per image
  ``diag(image_features @ text_features.T)`` with both embeddings L2-normalised (the cosine of the image and its
  prompt, the prompt as given), times ``scale``: 100 as ``evaluation.py`` and its published benchmark tables
  (e.g. 27.86), 1 for ``img_score.score``'s value. The value is the mean over images (``evaluation.py``:
  ``np.mean(all_score)``); with record categories (HPSv2's styles) the per-category means are in the extras.
* ``aesthetic`` — christophschuhmann/improved-aesthetic-predictor ``simple_inference.py``: per image the MLP
  head's prediction on the L2-normalised CLIP ViT-L/14 embedding (computed by the backbone); the value is the
  mean over images.

Both are means of per-image values: their per-sample values go to ``samples.parquet`` and their bootstrap
resamples prompts (:meth:`MetricContext.mean_resampler`). Cosines are computed in float64 after re-normalising
each row (the reference: fp16 under autocast on CUDA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..errors import ConfigError
from ..registry import Need, register_metric
from ..types import MetricValue
from .clip import category_means, rowwise_cos

HPS_IMAGE, HPS_TEXT = "hps.image", "hps"  # feature key; the backbone whose text embeddings the metric reads
AESTHETIC_SCORE = "aesthetic.score"
HPS_SCALE = 100.0  # hpsv2/evaluation.py: logits_per_image = image_features @ text_features.T * 100
HPS_REFERENCE = "tgxs002/HPSv2 hpsv2/img_score.py (score), hpsv2/evaluation.py (benchmark, x100)"
AESTHETIC_REFERENCE = "christophschuhmann/improved-aesthetic-predictor simple_inference.py"


def hps_score(image_emb: np.ndarray, text_emb: np.ndarray, scale: float = HPS_SCALE) -> np.ndarray:
    """Per row ``scale · cos(image_i, text_i)``: the diagonal of ``image_features @ text_features.T`` with both
    L2-normalised (HPSv2's score), in float64."""
    if not (np.isfinite(scale) and scale > 0):
        raise ConfigError(f"metrics.params.hpsv2.scale={scale!r}: must be > 0 (100: HPSv2's benchmark; 1: a cosine)")
    return float(scale) * rowwise_cos(image_emb, text_emb)


@dataclass(frozen=True)
class HpsParams:
    scale: float = HPS_SCALE  # 100 (evaluation.py, the published tables) | 1 (img_score.score: the cosine)


def texts_needed_hpsv2(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """The prompts, as given (HPSv2 tokenizes the prompt with no prefix)."""
    return list(dict.fromkeys(r.caption for r in records))


def _per_category(ctx: MetricContext, per: np.ndarray, extras: dict[str, Any]) -> None:
    cats = [ctx.records[s.record_index].category for s in ctx.samples]
    if any(c is not None for c in cats):
        extras["per_category"], extras["category_mean"] = category_means(per, cats)


@register_metric(
    "hpsv2",
    display="HPSv2",
    higher_is_better=True,
    version="1",
    subset="realism",
    unit="score",
    citation=(
        "Wu et al. 2023, Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of "
        "Text-to-Image Synthesis (tgxs002/HPSv2 hpsv2/img_score.py, evaluation.py)"
    ),
    needs=(Need("hps", "image", "gen"), Need("hps", "text", "text")),
    params=HpsParams,
)
def compute_hpsv2(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """HPS (v2 or v2.1, the checkpoint given to backbones.hps): per image scale·cos(HPS image embedding, HPS
    embedding of its prompt), mean over images (tgxs002/HPSv2 evaluation.py). Params: scale (100, as the
    published benchmark; 1 = img_score.score's cosine)."""
    scale = float(params["scale"])
    extras: dict[str, Any] = {
        "scale": scale,
        "aggregation": "mean_i scale*cos(hps_image_i, hps_text(prompt_i))",
        "reference_code": HPS_REFERENCE,
    }
    texts = [ctx.records[s.record_index].caption for s in ctx.samples]
    if not texts:
        return MetricValue(float("nan"), 0, extras={**extras, "reason": "no generated images"})
    per = hps_score(ctx.gen(HPS_IMAGE), ctx.text(texts, backbone=HPS_TEXT), scale)
    extras["n_truncated"] = ctx.n_truncated(texts, backbone=HPS_TEXT)
    _per_category(ctx, per, extras)
    return MetricValue(
        float(per.mean()),
        int(per.size),
        std=float(per.std()),
        per_sample=per,
        extras=extras,
        resample=ctx.mean_resampler(per),
    )


compute_hpsv2.texts_needed = texts_needed_hpsv2  # type: ignore[attr-defined]


@register_metric(
    "aesthetic",
    display="Aesthetic",
    higher_is_better=True,
    version="1",
    subset="realism",
    unit="score",
    citation=(
        "Schuhmann et al., LAION aesthetic predictor v2 (christophschuhmann/improved-aesthetic-predictor "
        "simple_inference.py, sac+logos+ava1-l14-linearMSE.pth on CLIP ViT-L/14)"
    ),
    needs=(Need("aesthetic", "score", "gen"),),
)
def compute_aesthetic(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """LAION aesthetic predictor v2: per image the linear MLP head's score on the L2-normalised CLIP ViT-L/14
    embedding (christophschuhmann/improved-aesthetic-predictor simple_inference.py), mean over images."""
    extras: dict[str, Any] = {"aggregation": "mean_i head(l2norm(clip_vit_l14(image_i)))"}
    extras["reference_code"] = AESTHETIC_REFERENCE
    per = np.asarray(ctx.gen(AESTHETIC_SCORE), dtype=np.float64).reshape(-1)
    if per.size == 0:
        return MetricValue(float("nan"), 0, extras={**extras, "reason": "no generated images"})
    _per_category(ctx, per, extras)
    return MetricValue(
        float(per.mean()),
        int(per.size),
        std=float(per.std()),
        per_sample=per,
        extras=extras,
        resample=ctx.mean_resampler(per),
    )
