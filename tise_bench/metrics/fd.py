"""Fréchet distances on other features than Inception's: FD-DINOv2 (dgm-eval) and CLIP-FID (clean-fid).

Both are FID's arithmetic on another network's features, and use FID's own functions
(:func:`~tise_bench.metrics.inception.fid_statistics`, :func:`~tise_bench.metrics.inception.frechet_distance`,
bootstrap replicates by :class:`~tise_bench.metrics.inception.FidReplicator`): mean and covariance (ddof 1) in
float64 of each side, then ``‖μ_g − μ_r‖² + Tr Σ_g + Tr Σ_r − 2 Tr (Σ_g Σ_r)^½``.

* ``fd_dinov2`` (Stein et al. 2023): layer6ai-labs/dgm-eval ``dgm_eval/metrics/fd.py``
  ``compute_FD_with_reps`` (``np.mean``, ``np.cov(rowvar=False)``, ``scipy.linalg.sqrtm`` of ``σ1·σ2``, its real
  part) on the DINOv2 ViT-L/14 CLS features of :mod:`tise_bench.backbones.dinov2`. Difference: the trace of the
  square root is Σ √λ over the eigenvalues of ``σ1·σ2`` (FID's, torch-fidelity's formula, and dgm-eval's own
  ``compute_efficient_FD_with_reps``), not ``sqrtm``'s trace: equal up to round-off (the test checks both), and
  without dgm-eval's ``eps`` retry on a singular product (never needed by the eigenvalue form). As for FID, those
  eigenvalues are computed as the ones of a symmetric matrix: ``σ_r^½ σ_g σ_r^½`` (``σ_r^½`` cached per reference),
  or with at most D generated rows their N × N row-space Gram (:class:`~tise_bench.metrics.inception.FidReplicator`).
* ``clip_fid``: GaParmar/clean-fid ``cleanfid/fid.py`` ``compute_fid(..., model_name="clip_vit_b_32")``
  (``fid_from_feats``: ``np.mean``, ``np.cov(rowvar=False)``, ``frechet_distance`` with ``sqrtm``) on the
  unnormalised CLIP ViT-B/32 embeddings of :mod:`tise_bench.backbones.clip_fid`. Same trace difference as above.

Both read reference IMAGES of the subset (``data.reference_stats`` holds Inception statistics only), in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import MetricContext
from ..registry import Need, reference_images, register_metric
from ..types import MetricValue
from .inception import FidReplicator, fid_statistics, frechet_distance, reference_sqrt_of

DINOV2 = "dinov2.cls"
CLIP_FID = "clip_fid.image"
_REFERENCE = {
    DINOV2: "layer6ai-labs/dgm-eval dgm_eval/metrics/fd.py compute_FD_with_reps",
    CLIP_FID: 'GaParmar/clean-fid cleanfid/fid.py compute_fid(model_name="clip_vit_b_32")',
}
_DIFFERENCES = (
    "trace of the matrix square root as the sum of sqrt eigenvalues of sigma_g sigma_r (reference: sqrtm), computed "
    "as those of the symmetric sigma_r^1/2 sigma_g sigma_r^1/2 (N <= D generated rows: of their N x N Gram in "
    "sigma_r)"
)


def frechet_distance_features(gen: np.ndarray, ref: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (N, D), float64 (FID's functions)."""
    mu_g, sigma_g = fid_statistics(gen)
    mu_r, sigma_r = fid_statistics(ref)
    return frechet_distance(mu_g, sigma_g, mu_r, sigma_r, names=("generated", "reference"))


def _fd(ctx: MetricContext, key: str) -> MetricValue:
    gen, ref = ctx.gen(key), ctx.ref(key)
    n_gen, n_ref = int(gen.shape[0]), int(ref.shape[0])
    extras: dict[str, Any] = {
        "feature": key,
        "n_reference": n_ref,
        "reference_code": _REFERENCE[key],
        "reference_differences": _DIFFERENCES,
    }
    if n_gen < 2 or n_ref < 2:
        reason = f"a Fréchet distance needs at least 2 images per side, got {n_gen} generated / {n_ref} reference"
        return MetricValue(value=float("nan"), n=n_gen, extras={**extras, "reason": reason})
    mu_r, sigma_r = fid_statistics(ref)
    fid = FidReplicator(gen, mu_r, sigma_r, sqrt_r=reference_sqrt_of(ctx, sigma_r))
    return MetricValue(value=fid.point(), n=n_gen, extras=extras, resample=ctx.rows_resampler(fid, "fid"))


@register_metric(
    "fd_dinov2",
    display="FD-DINOv2",
    higher_is_better=False,
    version="1",
    subset="realism",
    unit="distance",
    citation=(
        "Stein et al. 2023, Exposing flaws of generative model evaluation metrics and their unfair treatment "
        "of diffusion models (layer6ai-labs/dgm-eval)"
    ),
    needs=(Need("dinov2", "cls", "gen"), Need("dinov2", "cls", "ref")),
)
def compute_fd_dinov2(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fréchet distance between DINOv2 ViT-L/14 CLS features (dgm-eval: 224 px PIL bicubic, ImageNet
    normalisation, unnormalised CLS token) of the generated and the reference images; float64."""
    return _fd(ctx, DINOV2)


compute_fd_dinov2.requires = reference_images  # type: ignore[attr-defined]


@register_metric(
    "clip_fid",
    display="CLIP-FID",
    higher_is_better=False,
    version="1",
    subset="realism",
    unit="distance",
    citation=(
        "Kynkäänniemi et al. 2023, The Role of ImageNet Classes in Fréchet Inception Distance; as clean-fid "
        "computes it (Parmar et al. 2022, GaParmar/clean-fid, model_name=clip_vit_b_32)"
    ),
    needs=(Need("clip_fid", "image", "gen"), Need("clip_fid", "image", "ref")),
)
def compute_clip_fid(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fréchet distance between unnormalised CLIP ViT-B/32 image embeddings (clean-fid: 224 px bicubic
    shortest side + centre crop, OpenAI normalisation) of the generated and the reference images; float64."""
    return _fd(ctx, CLIP_FID)


compute_clip_fid.requires = reference_images  # type: ignore[attr-defined]
