"""Kernel Inception Distance (KID; Bińkowski et al. 2018) as torch-fidelity 0.4 defines it.

``kid`` is a pure function over two feature arrays; the registered adapter reads Inception pool3 features of
the generated images and of the subset's reference images (reference *images*: a mean and covariance cannot
give KID, so ``data.reference_stats`` does not serve it).

torch-fidelity's ``kid_features_to_metric`` (``metric_kid.py``), reproduced step by step:

* ``rng = np.random.RandomState(seed)`` (``rng_seed``, 2020); for each of ``subsets`` (100) subsets, first
  ``rng.choice(N_1, subset_size, replace=False)`` rows of the first input (the generated images, torch-fidelity's
  ``input1``), then ``rng.choice(N_2, subset_size, replace=False)`` rows of the second (the reference images);
* polynomial kernel ``k(x, y) = (gamma · x·y + coef0) ** degree`` with degree 3, gamma ``None`` → 1 / dim,
  coef0 1;
* the unbiased MMD² estimator of Bińkowski et al.'s ``compute_scores.py`` (``mmd_est="unbiased"``):
  ``(Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / m²``;
* value = mean over the subsets (``kernel_inception_distance_mean``), ``std`` = their population standard
  deviation (``kernel_inception_distance_std``).

One difference, on purpose: torch-fidelity computes the kernels in the features' dtype (float32 from its
Inception); here they are computed in float64. On float64 inputs the two agree to round-off (the test calls
torch-fidelity's function); on float32 inputs torch-fidelity's own value carries float32 cancellation error.
KID values slightly below 0 are valid (the estimator is unbiased) and mean the distributions are very close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..errors import ConfigError
from ..registry import MinComparable, Need, extra_count, n_count, register_metric, resolve_params
from ..types import MetricValue

POOL3 = "inception.pool3"
#: torch-fidelity 0.4 defaults (``torch_fidelity/defaults.py``: kid_subsets, kid_subset_size,
#: kid_kernel_poly_degree / _gamma / _coef0, rng_seed).
SUBSETS, SUBSET_SIZE, DEGREE, GAMMA, COEF0, SEED = 100, 1000, 3, None, 1.0, 2020
#: Images per side below which KID is not comparable to published numbers: torch-fidelity's subset size (1,000,
#: as Bińkowski et al. 2018), which torch-fidelity refuses to go below; ours shrinks it only on request
#: (``shrink_subset_size``), and a smaller subset gives a noisier, differently averaged estimate.
KID_MIN_SAMPLES = SUBSET_SIZE
_KID_SOURCE = "torch-fidelity's kid_subset_size, 1,000 per side"


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = DEGREE, gamma: float | None = GAMMA, coef0: float = COEF0
) -> np.ndarray:
    """``(gamma · X Yᵀ + coef0) ** degree``; ``gamma`` None → 1 / dim (torch-fidelity's ``kernel_poly``)."""
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    return (x @ y.T * g + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD² from the three m×m kernel matrices (diagonals of K_XX and K_YY left out)."""
    m = k_xx.shape[0]
    if m < 2 or k_xx.shape != (m, m) or k_xy.shape != (m, m) or k_yy.shape != (m, m):
        raise ValueError(
            f"mmd2_unbiased: need three m×m kernel matrices with m ≥ 2, got {k_xx.shape}, {k_xy.shape}, {k_yy.shape}"
        )
    kt_xx = k_xx.sum() - np.trace(k_xx)
    kt_yy = k_yy.sum() - np.trace(k_yy)
    return float((kt_xx + kt_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(
    gen: np.ndarray,
    ref: np.ndarray,
    *,
    subsets: int = SUBSETS,
    subset_size: int = SUBSET_SIZE,
    degree: int = DEGREE,
    gamma: float | None = GAMMA,
    coef0: float = COEF0,
    seed: int = SEED,
) -> tuple[float, float, np.ndarray]:
    """KID between ``gen`` (N_1, D) and ``ref`` (N_2, D) -> (mean, population std, per-subset MMD²).

    Raises ``ValueError`` when ``subset_size`` exceeds either set (torch-fidelity refuses this too).
    """
    x, y = np.asarray(gen, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kid: expected two 2-D arrays with the same number of columns, got {x.shape} and {y.shape}")
    for what, a in (("generated", x), ("reference", y)):
        if not np.isfinite(a).all():
            raise ValueError(f"kid: {what} features contain NaN or inf; re-extract them")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"kid: need subsets ≥ 1 and subset_size ≥ 2, got subsets={subsets}, subset_size={subset_size}")
    n1, n2 = x.shape[0], y.shape[0]
    if n1 < subset_size or n2 < subset_size:
        raise ValueError(
            f"kid: subset_size {subset_size} is larger than the generated ({n1}) or reference ({n2}) "
            "set; each subset draws subset_size rows of each side without replacement"
        )
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        f1 = x[rng.choice(n1, subset_size, replace=False)]
        f2 = y[rng.choice(n2, subset_size, replace=False)]
        mmds[i] = mmd2_unbiased(
            polynomial_kernel(f1, f1, degree, gamma, coef0),
            polynomial_kernel(f1, f2, degree, gamma, coef0),
            polynomial_kernel(f2, f2, degree, gamma, coef0),
        )
    return float(np.mean(mmds)), float(np.std(mmds)), mmds


#: Largest Gram matrices (generated × (generated + reference), float64) a :class:`KidReplicator` keeps; above it
#: each replicate recomputes its kernels from the features (exact too, about 10× slower).
GRAM_BUDGET_BYTES = 2 << 30


class KidReplicator:
    """KID of a bootstrap replicate's multiset of generated images (``rows``, sorted so the identity resample is
    the generated set itself), exactly as :func:`kid` on ``gen[rows]`` would compute it, but fast.

    Every replicate draws the same subset indices (same seed, same set sizes), so a subset's kernel matrices are
    sub-matrices of the full generated × generated and generated × reference polynomial kernels: computed once
    (when they fit :data:`GRAM_BUDGET_BYTES`), each replicate gathers its subsets' entries instead of
    multiplying 1000 × 2048 feature blocks again; the reference × reference term of each subset does not depend on
    the replicate and is computed once. Above the budget every replicate calls :func:`kid` (same value)."""

    def __init__(self, gen: np.ndarray, ref: np.ndarray, params: dict[str, Any], budget: int = GRAM_BUDGET_BYTES):
        self.gen, self.ref, self.p = np.asarray(gen, np.float64), np.asarray(ref, np.float64), dict(params)
        n1, n2 = len(self.gen), len(self.ref)
        self.fits = n1 * (n1 + n2) * 8 <= budget
        self._gram: tuple[np.ndarray, np.ndarray] | None = None
        self._draws: dict[int, list[tuple[np.ndarray, np.ndarray, float]]] = {}

    def _kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return polynomial_kernel(x, y, self.p["degree"], self.p["gamma"], self.p["coef0"])

    def _subsets(self, n1: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """(generated positions, reference rows, reference term) per subset, for a replicate of ``n1`` rows: the
        draws of :func:`kid` (``rng.choice`` of n1 then of n2, per subset, from the seed)."""
        if n1 not in self._draws:
            m, n2 = self.p["subset_size"], len(self.ref)
            rng = np.random.RandomState(self.p["seed"])
            out = []
            for _ in range(self.p["subsets"]):
                a = rng.choice(n1, m, replace=False)
                b = rng.choice(n2, m, replace=False)
                k_yy = self._kernel(self.ref[b], self.ref[b])
                out.append((a, b, float((k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)))))
            self._draws[n1] = out
        return self._draws[n1]

    def __call__(self, rows: np.ndarray) -> float:
        rows = np.sort(np.asarray(rows))
        m = self.p["subset_size"]
        if len(rows) < m:
            return math.nan
        if not self.fits:
            return kid(self.gen[rows], self.ref, **self.p)[0]
        if self._gram is None:
            self._gram = (self._kernel(self.gen, self.gen), self._kernel(self.gen, self.ref))
        k_gg, k_gr = self._gram
        mmds = []
        for a, b, yy in self._subsets(len(rows)):
            g = rows[a]
            k_xx = k_gg[np.ix_(g, g)]
            xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
            mmds.append(xx + yy - 2.0 * k_gr[np.ix_(g, b)].sum() / (m * m))
        return float(np.mean(mmds))


@dataclass(frozen=True)
class KIDParams:
    """torch-fidelity's defaults; ``shrink_subset_size``: use min(generated, reference, subset_size) instead of
    failing like torch-fidelity when a side has fewer than ``subset_size`` images."""

    subsets: int = SUBSETS
    subset_size: int = SUBSET_SIZE
    degree: int = DEGREE
    gamma: float | None = GAMMA  # None = 1 / feature dimension
    coef0: float = COEF0
    seed: int = SEED
    shrink_subset_size: bool = False


def kid_params(params: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`kid` from ``metrics.params.kid`` (torch-fidelity's defaults for what is not given)."""
    p = resolve_params(KIDParams, params, "kid")
    return {
        "subsets": int(p["subsets"]),
        "subset_size": int(p["subset_size"]),
        "degree": int(p["degree"]),
        "gamma": None if p["gamma"] is None else float(p["gamma"]),
        "coef0": float(p["coef0"]),
        "seed": int(p["seed"]),
    }


def _too_small(n_gen: int, n_ref: int, size: int) -> str:
    return (
        f"KID: metrics.params.kid.subset_size={size} is larger than the {n_gen} generated / {n_ref} reference "
        f"images (torch-fidelity refuses this: each of the subsets draws subset_size images of each side without "
        f"replacement). fix: metrics.params.kid.subset_size=<at most {min(n_gen, n_ref)}>, or "
        f"metrics.params.kid.shrink_subset_size=true to use min(generated, reference, subset_size) "
        f"(the size used is recorded in metrics.json)"
    )


def requires_kid(records: list, evalset: Any, params: dict[str, Any] | None = None) -> str | None:
    """Reference images in the subset, and (unless ``shrink_subset_size``) at least ``subset_size`` of them."""
    p = dict(params or {})
    n_ref = sum(1 for r in records if r.reference)
    if n_ref == 0:
        return "records carry no 'reference' images (KID compares image features; reference_stats cannot serve it)"
    size = kid_params(p)["subset_size"]
    if n_ref < size and not p["shrink_subset_size"]:
        return (
            f"{n_ref} reference images, fewer than metrics.params.kid.subset_size={size} (torch-fidelity refuses "
            f"this); set metrics.params.kid.subset_size<={n_ref} or metrics.params.kid.shrink_subset_size=true"
        )
    return None


@register_metric(
    "kid",
    display="KID",
    higher_is_better=False,
    version="1",
    subset="realism",
    unit="distance",
    citation="Bińkowski et al. 2018, Demystifying MMD GANs (KID as torch-fidelity 0.4 computes it)",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
    params=KIDParams,
    min_comparable=(
        MinComparable("generated images", KID_MIN_SAMPLES, n_count, _KID_SOURCE),
        MinComparable("reference images", KID_MIN_SAMPLES, extra_count("n_reference"), _KID_SOURCE),
    ),
)
def compute_kid(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """KID = mean over random subsets of the unbiased MMD² with kernel (x·y/d + 1)³ between pool3 features of
    generated and reference images; std beside it. Params (torch-fidelity's): subsets 100, subset_size 1000,
    degree 3, gamma null (1/d), coef0 1, seed 2020; shrink_subset_size (false: fail like torch-fidelity when a
    side has fewer than subset_size images; true: use the smaller size, recorded)."""
    p = kid_params(params)
    gen, ref = ctx.gen(POOL3), ctx.ref(POOL3)
    n_gen, n_ref = int(gen.shape[0]), int(ref.shape[0])
    size = p["subset_size"]
    if params["shrink_subset_size"]:
        size = min(size, n_gen, n_ref)
        if size < 2:
            return MetricValue(
                value=float("nan"),
                n=n_gen,
                extras={"reason": f"KID needs at least 2 images per side, got {n_gen} generated / {n_ref} reference"},
            )
    if n_gen < size or n_ref < size:
        raise ConfigError(_too_small(n_gen, n_ref, size))
    mean, std, _ = kid(gen, ref, **{**p, "subset_size": size})

    score = KidReplicator(gen, ref, {**p, "subset_size": size})
    gamma = p["gamma"] if p["gamma"] is not None else 1.0 / gen.shape[1]
    return MetricValue(
        value=mean,
        n=n_gen,
        std=std,
        extras={
            "feature": POOL3,
            "subsets": p["subsets"],
            "subset_size": size,
            "degree": p["degree"],
            "gamma": gamma,
            "coef0": p["coef0"],
            "seed": p["seed"],
            "n_reference": n_ref,
        },
        resample=ctx.rows_resampler(score, "is"),
    )


compute_kid.requires = requires_kid  # type: ignore[attr-defined]
