"""CMMD (Jayasumana et al. 2024, "Rethinking FID"): MMD with a Gaussian RBF kernel between CLIP image embeddings.

``cmmd`` is a pure function over two embedding arrays; the registered adapter reads the ``clip_cmmd`` backbone's
embeddings (:mod:`tise_bench.backbones.clip_cmmd`: OpenAI CLIP ViT-L/14@336px with the reference's preprocessing,
L2-normalised) of the generated images and of the subset's reference images.

The reference, google-research/google-research ``cmmd/distance.py`` (``mmd(x, y)``; the PyTorch port
sayakpaul/cmmd-pytorch ``distance.py`` is the same code in torch), called by ``cmmd/main.py`` as
``mmd(ref_embs, eval_embs)``, reproduced step by step:

* ``_SIGMA = 10``, ``_SCALE = 1000``, ``gamma = 1 / (2 * _SIGMA**2)``;
* ``x_sqnorms = diag(x xᵀ)`` (likewise y), and ``k(a, b) = exp(-gamma · (-2 a·b + |a|² + |b|²))``;
* ``k_xx``, ``k_xy``, ``k_yy`` = the **mean over all entries** of each kernel matrix, diagonals included: the
  minimum-variance / biased estimator (Gretton et al. 2012, Eq. 5), as its docstring says;
* ``value = _SCALE · (k_xx + k_yy − 2 k_xy)``.

``estimator="unbiased"`` (an option, not the reference's) leaves the diagonals of K_xx and K_yy out:
``Σ_{i≠j} / (n(n−1))`` (Gretton et al. 2012, Eq. 3); ``k_xy`` stays the mean over all pairs.

With unit-norm embeddings ``|a − b|² = 2 − 2 a·b``, so ``k(a, b) = exp((a·b − 1) / σ²)``; the tests check the
value against that closed form. The formula is kept general (the norms as computed, as the reference does).

Differences from the reference, on purpose (also in ``metrics.json`` under ``cmmd.reference_differences``):
float64 arithmetic (the reference: float32 embeddings and float32 kernels); every image is used (the reference's
``io_util`` drops the last partial batch of 32 images of each directory and, with ``max_count``, takes the first
files in name order); the kernel sums are computed in row blocks, so no n × n matrix is held (memory O(block · n)).

Bootstrap: prompts of the subset are resampled with replacement, every sample of a drawn prompt comes along (the
generated side); the reference side stays fixed (as FID keeps the reference statistics). A replicate is
``scale · (wᵀK_gg w / m² + k_rr − 2 wᵀr / m)`` with ``w`` the multiplicities of the generated rows, ``m = Σw``,
``r_i`` the mean kernel of generated row i against the references — the metric itself on the resampled multiset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..errors import ConfigError
from ..registry import Need, register_metric, resolve_params
from ..resampling import prompt_counts
from ..types import MetricValue

FEATURE = "clip_cmmd.image"
#: the reference's constants (google-research cmmd/distance.py ``_SIGMA``, ``_SCALE``)
SIGMA, SCALE = 10.0, 1000.0
ESTIMATORS = ("biased", "unbiased")
REFERENCE = "google-research/google-research cmmd/distance.py (mmd)"
REFERENCE_DIFFERENCES = (
    "float64 kernels (reference: float32); every image used (reference: drops the last partial batch of 32 per "
    "directory); kernel sums in row blocks (same value, no n x n matrix in memory)"
)
_BLOCK_ELEMENTS = 1 << 22  # kernel entries per block (32 MiB of float64)
_REPLICATE_CHUNK = 256  # replicates per pass over the generated kernel rows


def _as64(a: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"cmmd: {what} embeddings must be a 2-D array (n, dim), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"cmmd: {what} embeddings contain NaN or inf; re-extract them")
    return x


def _sqnorms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _kernel(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray, gamma: float) -> np.ndarray:
    """The reference's ``exp(-gamma · (-2 a bᵀ + |a|²[:, None] + |b|²[None, :]))``."""
    return np.exp(-gamma * (-2.0 * (a @ b.T) + a_sq[:, None] + b_sq[None, :]))


def _kernel_stats(
    a: np.ndarray, b: np.ndarray | None, gamma: float, *, row_means: bool = False
) -> tuple[float, float, np.ndarray | None]:
    """Over K(a, b) (``b`` None: K(a, a)) in row blocks -> (sum of all entries, trace (K(a, a) only, else 0),
    per-row means of K (when ``row_means``))."""
    a_sq = _sqnorms(a)
    same = b is None
    bb, b_sq = (a, a_sq) if b is None else (b, _sqnorms(b))
    total, trace = 0.0, 0.0
    means = np.empty(a.shape[0]) if row_means else None
    step = _rows(bb.shape[0])
    for lo in range(0, a.shape[0], step):
        hi = min(lo + step, a.shape[0])
        k = _kernel(a[lo:hi], a_sq[lo:hi], bb, b_sq, gamma)
        total += float(k.sum())
        if same:
            trace += float(np.trace(k[:, lo:hi]))
        if means is not None:
            means[lo:hi] = k.mean(axis=1)
    return total, trace, means


def _term(total: float, trace: float, n: int, estimator: str) -> float:
    """Mean kernel of one side with itself: all n² entries (biased) or the n(n−1) off-diagonal ones."""
    if estimator == "biased":
        return total / (n * n)
    return (total - trace) / (n * (n - 1))


def _check(sigma: float, scale: float, estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ConfigError(f"metrics.params.cmmd.estimator={estimator!r}: valid values are {', '.join(ESTIMATORS)}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"metrics.params.cmmd.sigma={sigma!r}: the RBF bandwidth must be > 0 (reference: 10)")


def cmmd(
    gen: np.ndarray, ref: np.ndarray, *, sigma: float = SIGMA, scale: float = SCALE, estimator: str = "biased"
) -> float:
    """CMMD between embeddings ``gen`` (N, D) and ``ref`` (M, D): ``scale · MMD²`` with the Gaussian RBF kernel
    ``exp(-|a − b|² / (2σ²))``, biased (the reference's) or unbiased estimator, in float64.

    Symmetric in its two inputs (the reference calls ``mmd(ref, gen)``). Raises ``ValueError`` for empty sets, or
    sets of one embedding with the unbiased estimator.
    """
    _check(sigma, scale, estimator)
    x, y = _as64(ref, "reference"), _as64(gen, "generated")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"cmmd: embedding widths differ: reference {x.shape}, generated {y.shape}")
    least = 1 if estimator == "biased" else 2
    if x.shape[0] < least or y.shape[0] < least:
        raise ValueError(
            f"cmmd: the {estimator} estimator needs at least {least} embedding(s) per side, got "
            f"{y.shape[0]} generated / {x.shape[0]} reference"
        )
    gamma = 1.0 / (2.0 * float(sigma) ** 2)
    k_xx = _term(*_kernel_stats(x, None, gamma)[:2], x.shape[0], estimator)
    k_yy = _term(*_kernel_stats(y, None, gamma)[:2], y.shape[0], estimator)
    k_xy = _kernel_stats(x, y, gamma)[0] / (x.shape[0] * y.shape[0])
    return float(scale) * (k_xx + k_yy - 2.0 * k_xy)


class CmmdReplicator:
    """CMMD of weighted (resampled) generated rows against the fixed reference set, all replicates at once.

    ``wᵀ K_gg w`` is accumulated over row blocks of K_gg (recomputed per pass, never held whole); the reference
    side enters through its self term and the per-generated-row means ``r`` of K(gen, ref), computed once.
    """

    def __init__(self, gen: np.ndarray, ref: np.ndarray, sigma: float, scale: float, estimator: str) -> None:
        _check(sigma, scale, estimator)
        self.x, y = _as64(gen, "generated"), _as64(ref, "reference")
        self.gamma, self.scale, self.estimator = 1.0 / (2.0 * float(sigma) ** 2), float(scale), estimator
        self.k_rr = _term(*_kernel_stats(y, None, self.gamma)[:2], y.shape[0], estimator)
        r = _kernel_stats(self.x, y, self.gamma, row_means=True)[2]
        assert r is not None
        self.r = r
        self.sq = _sqnorms(self.x)
        # the diagonal as the blocks compute it: exp(-gamma · (-2 x·x + 2 |x|²)) (1 up to round-off)
        self.diag = np.exp(-self.gamma * (-2.0 * np.einsum("ij,ij->i", self.x, self.x) + 2.0 * self.sq))

    def values(self, weights: np.ndarray) -> np.ndarray:
        """``(B, N)`` row multiplicities -> ``(B,)`` CMMD values (NaN where too few rows are drawn)."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        n = self.x.shape[0]
        quad = np.zeros(w.shape[0])
        step = _rows(n)
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            k = _kernel(self.x[lo:hi], self.sq[lo:hi], self.x, self.sq, self.gamma)  # (c, N)
            quad += np.einsum("bc,bc->b", w[:, lo:hi], w @ k.T)
        m = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.estimator == "biased":
                k_gg = quad / (m * m)
            else:
                k_gg = (quad - w @ self.diag) / (m * (m - 1.0))
            out = self.scale * (k_gg + self.k_rr - 2.0 * (w @ self.r) / m)
        least = 1 if self.estimator == "biased" else 2
        return np.where(m >= least, out, np.nan)


@dataclass(frozen=True)
class CmmdResampler:
    """Replicates of CMMD over prompt draws: generated rows weighted by how often their prompt was drawn."""

    replicator: CmmdReplicator
    prompt_of_sample: np.ndarray
    n_prompts: int
    kind: str = "fid"  # a set-level statistic recomputed from features (bootstrap.replicates_features)

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        draws = np.atleast_2d(np.asarray(draws, dtype=np.int64))
        rows = np.asarray(self.prompt_of_sample, dtype=np.int64)
        out = np.empty(draws.shape[0])
        for lo in range(0, draws.shape[0], _REPLICATE_CHUNK):
            w = prompt_counts(draws[lo : lo + _REPLICATE_CHUNK], self.n_prompts)[:, rows]
            out[lo : lo + _REPLICATE_CHUNK] = self.replicator.values(w)
        return out


@dataclass(frozen=True)
class CMMDParams:
    """The reference's constants (σ = 10, ×1000) and its biased estimator; ``unbiased`` as an option."""

    sigma: float = SIGMA
    scale: float = SCALE
    estimator: str = "biased"  # biased (the reference's) | unbiased


def requires_cmmd(records: list, evalset: Any, params: dict[str, Any] | None = None) -> str | None:
    """Reference images in the subset (CMMD compares embeddings; no statistics file can serve it)."""
    p = resolve_params(CMMDParams, dict(params or {}), "cmmd")
    _check(float(p["sigma"]), float(p["scale"]), str(p["estimator"]))
    if not any(r.reference for r in records):
        return (
            "records carry no 'reference' images (CMMD compares CLIP embeddings of generated and reference "
            "images; reference_stats cannot serve it)"
        )
    return None


@register_metric(
    "cmmd",
    display="CMMD",
    higher_is_better=False,
    version="1",
    subset="realism",
    unit="distance",
    citation=(
        "Jayasumana et al. 2024, Rethinking FID: Towards a Better Evaluation Metric for Image Generation "
        "(google-research/google-research cmmd/)"
    ),
    needs=(Need("clip_cmmd", "image", "gen"), Need("clip_cmmd", "image", "ref")),
    params=CMMDParams,
)
def compute_cmmd(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """CMMD = 1000 · MMD² (Gaussian RBF kernel, σ = 10) between CLIP ViT-L/14@336px embeddings of generated and
    reference images, the reference code's biased estimator (google-research cmmd/distance.py); params: sigma 10,
    scale 1000, estimator biased | unbiased. Float64."""
    sigma, scale, estimator = float(params["sigma"]), float(params["scale"]), str(params["estimator"])
    gen, ref = ctx.gen(FEATURE), ctx.ref(FEATURE)
    n_gen, n_ref = int(gen.shape[0]), int(ref.shape[0])
    extras: dict[str, Any] = {
        "feature": FEATURE,
        "kernel": "gaussian_rbf",
        "sigma": sigma,
        "scale": scale,
        "estimator": estimator,
        "n_reference": n_ref,
        "reference_code": REFERENCE,
        "reference_differences": REFERENCE_DIFFERENCES,
    }
    least = 1 if estimator == "biased" else 2
    if n_gen < least or n_ref < least:
        reason = (
            f"CMMD ({estimator}) needs at least {least} image(s) per side, got {n_gen} generated / {n_ref} reference"
        )
        return MetricValue(value=float("nan"), n=n_gen, extras={**extras, "reason": reason})
    value = cmmd(gen, ref, sigma=sigma, scale=scale, estimator=estimator)
    resample = CmmdResampler(CmmdReplicator(gen, ref, sigma, scale, estimator), ctx.sample_record, len(ctx.records))
    return MetricValue(value=value, n=n_gen, extras=extras, resample=resample)


compute_cmmd.requires = requires_cmmd  # type: ignore[attr-defined]
