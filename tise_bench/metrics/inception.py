"""Inception-based realism metrics: IS, IS* (calibrated IS) and FID.

Pure functions over numpy arrays (``fid_statistics``, ``frechet_distance``, ``inception_score``) plus thin
registered adapters reading features from a :class:`~tise_bench.context.MetricContext`.
The arithmetic reproduces torch-fidelity 0.4 (``fid_statistics_to_metric``, ``isc_features_to_metric``);
the tests compare against it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backbones.bird_classifier import TISE_BIRD_TEMPERATURE
from ..context import MetricContext
from ..errors import ConfigError
from ..features.refcache import reference_sqrt
from ..registry import MinComparable, Need, extra_count, n_count, reference_images_or_stats, register_metric
from ..types import MetricValue

POOL3 = "inception.pool3"
LOGITS = "inception.logits_unbiased"
#: TISE's temperature for COCO, fitted on ImageNet validation logits of inception-v3-compat.
COCO_TEMPERATURE = 0.9091363549232483
#: TISE's temperature for CUB IS* (its bird-fine-tuned Inception, 50 classes, background dropped).
BIRD_TEMPERATURE = TISE_BIRD_TEMPERATURE
TISE_TEMPERATURE = {"inception": COCO_TEMPERATURE, "bird_classifier": BIRD_TEMPERATURE}  # IS* per network
IS_STAR_NETWORKS = {
    "inception": Need("inception", "logits_unbiased", "gen"),
    "bird_classifier": Need("bird_classifier", "logits", "gen"),
}


def _check_finite_rows(x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what}: {int(bad.sum())} of {x.shape[0]} rows contain NaN or inf (first bad row {int(np.argmax(bad))}); "
            "the images behind them are likely corrupt or the backbone overflowed — re-extract features"
        )


def _as_2d(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (n_samples, dim), got shape {x.shape}")
    return x


def fid_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``feats`` (N, D) in float64: ``mu = mean(X)``, ``sigma = cov(X)`` (ddof 1).

    Same as torch-fidelity's ``fid_features_to_statistics`` (``np.mean``, ``np.cov(rowvar=False)``), except
    that the mean is taken in float64 rather than the input dtype. Needs N ≥ 2 finite rows.
    """
    x = _as_2d(feats, "fid_statistics")
    _check_finite_rows(x, "fid_statistics")
    if x.shape[0] < 2:
        raise ValueError(f"fid_statistics: a covariance needs at least 2 samples, got {x.shape[0]}")
    return np.mean(x, axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _check_gaussians(sides: tuple[tuple[str, np.ndarray, np.ndarray], ...]) -> None:
    """Each (name, mu, sigma) is a consistent, finite Gaussian, and all have one dimension."""
    for name, m, s in sides:
        if m.ndim != 1 or s.shape != (m.shape[0], m.shape[0]):
            raise ValueError(
                f"frechet_distance: {name} statistics are inconsistent: mu shape {m.shape}, "
                f"sigma shape {s.shape}; expected mu (D,) and sigma (D, D)"
            )
        if not (np.isfinite(m).all() and np.isfinite(s).all()):
            raise ValueError(f"frechet_distance: {name} statistics contain NaN or inf")
    (n1, m1, s1), (n2, m2, s2) = sides[0], sides[-1]
    if m1.shape != m2.shape:
        raise ValueError(
            f"frechet_distance: dimension mismatch — {n1} mu {m1.shape}, sigma {s1.shape} vs "
            f"{n2} mu {m2.shape}, sigma {s2.shape}; both sides must come from the same feature layer"
        )


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    names: tuple[str, str] = ("first", "second"),
) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    ``d² = ‖mu1 − mu2‖² + Tr(sigma1) + Tr(sigma2) − 2·Tr((sigma1·sigma2)^½)``, where the trace of the matrix
    square root is computed as Σ Re √λ_i over the eigenvalues λ_i of sigma1·sigma2 (the eigenvalues of a
    product of two PSD matrices are real and ≥ 0 up to round-off; this avoids ``sqrtm``'s instability and
    is the formula torch-fidelity 0.4 uses). ``names`` label the two sides in error messages.
    """
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    _check_gaussians(((names[0], m1, s1), (names[1], m2, s2)))
    diff = m1 - m2
    eig = np.linalg.eigvals(s1 @ s2).astype(np.complex128)
    tr_covmean = float(np.sum(np.sqrt(eig).real))
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_sqrt(
    mu_g: np.ndarray, sigma_g: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray, sqrt_r: np.ndarray
) -> float:
    """:func:`frechet_distance` with the reference side's symmetric square root ``A = Σ_r^½`` given
    (:func:`~tise_bench.features.refcache.reference_sqrt`, computed once per reference and cached).

    ``d² = ‖μ_g − μ_r‖² + Tr Σ_g + Tr Σ_r − 2 Σ √λ⁺`` with ``λ`` the eigenvalues of the symmetric ``A Σ_g A``: they
    are those of ``Σ_g Σ_r`` (``A Σ_g A`` and ``Σ_g A A`` share their eigenvalues), so ``Tr (Σ_g Σ_r)^½`` is the same
    number as torch-fidelity's ``Σ Re √eig(Σ_g Σ_r)``; a model then costs one symmetric eigenvalue solve
    (``eigvalsh``) instead of a general ``D × D`` eigenproblem. Negative round-off eigenvalues count as 0, as
    ``Re √λ`` does. No checks: callers check the statistics (:func:`_check_gaussians`)."""
    diff = mu_g - mu_r
    tr_covmean = _trace_sqrt_psd(sqrt_r @ sigma_g @ sqrt_r)
    return float(diff @ diff + np.trace(sigma_g) + np.trace(sigma_r) - 2.0 * tr_covmean)


def _trace_sqrt_psd(m: np.ndarray) -> float:
    """``Tr m^½`` of a symmetric positive semi-definite ``m``: ``Σ √max(λ, 0)`` over ``eigvalsh(m)``."""
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(m), 0.0, None)).sum())


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def inception_score(
    logits: np.ndarray,
    temperature: float = 1.0,
    splits: int = 10,
    shuffle: bool = True,
    seed: int = 2020,
) -> tuple[float, float, list[float]]:
    """Inception Score (Salimans et al. 2016) with an optional calibration temperature (TISE's IS*).

    ``p(y|x) = softmax(z / T)``; per split, ``IS = exp(mean_x KL(p(y|x) ‖ p(y)))`` with ``p(y)`` the split's
    mean prediction. Rows are permuted with ``np.random.RandomState(seed).permutation(N)`` and split at
    ``i·N // splits`` exactly as torch-fidelity's ``isc_features_to_metric`` (float64 throughout), so T = 1
    reproduces ``inception_score_mean`` / ``_std`` (population std over splits).
    If ``N < splits`` the number of splits is lowered to ``N`` (every split keeps ≥ 1 sample).

    Returns ``(mean, std, split_scores)``.
    """
    z = _as_2d(logits, "inception_score")
    _check_finite_rows(z, "inception_score")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"inception_score: temperature must be a positive finite number, got {temperature}")
    n = z.shape[0]
    if n == 0:
        raise ValueError("inception_score: no samples")
    if splits < 1:
        raise ValueError(f"inception_score: splits must be ≥ 1, got {splits}")
    splits = min(splits, n)
    if shuffle:
        z = z[np.random.RandomState(seed).permutation(n)]
    log_p = _log_softmax(z / temperature)
    p = np.exp(log_p)
    scores: list[float] = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_c, log_p_c = p[lo:hi], log_p[lo:hi]
        # log of the split's marginal via logsumexp, and 0·log0 := 0: saturated softmaxes (p == 0 in
        # float64) stay finite instead of turning the score into NaN.
        log_q = _logsumexp0(log_p_c) - math.log(hi - lo)
        terms = np.where(p_c > 0, p_c * (log_p_c - log_q), 0.0)
        kl = terms.sum(axis=1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores)), scores


def inception_score_tise_objects(
    logits: np.ndarray,
    temperature: float = 1.0,
    splits: int = 10,
) -> tuple[float, float, list[float]]:
    """TISE's O-IS split procedure (``object_centric_inception_score.py``), on logits in their given order.

    ``p = softmax(z / T)``; ``splits`` contiguous parts of ``N // splits`` rows each — no shuffling, the last
    ``N % splits`` rows are dropped; per part ``exp(mean_i scipy.stats.entropy(p_i, mean(part)))``; returns
    ``(mean, population std, split_scores)``. Needs ``N ≥ splits`` (TISE would return NaN below that).
    """
    z = _as_2d(logits, "inception_score_tise_objects")
    _check_finite_rows(z, "inception_score_tise_objects")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"inception_score_tise_objects: temperature must be positive and finite, got {temperature}")
    if splits < 1:
        raise ValueError(f"inception_score_tise_objects: splits must be ≥ 1, got {splits}")
    n, size = z.shape[0], z.shape[0] // max(splits, 1)
    if size == 0:
        raise ValueError(
            f"inception_score_tise_objects: {n} rows for {splits} splits; TISE's procedure takes "
            f"N // splits rows per split and needs N ≥ splits"
        )
    p = np.exp(_log_softmax(z / temperature))
    scores = []
    for k in range(splits):
        part = p[k * size : (k + 1) * size]
        kl = _scipy_entropy_rows(part, part.mean(axis=0)[None, :])
        scores.append(float(np.exp(np.mean(kl))))
    return float(np.mean(scores)), float(np.std(scores)), scores


def _scipy_entropy_rows(pk: np.ndarray, qk: np.ndarray) -> np.ndarray:
    """``scipy.stats.entropy(pk, qk, axis=1)`` for 2-D float64 ``pk`` (N, C) and ``qk`` (1, C), with scipy's own
    arithmetic (scipy 1.17 ``_entropy.py``: broadcast, normalise each row, ``special.rel_entr``, sum over the row),
    bit-identical (``tests/metrics/test_inception.py``), without the ~0.7 ms per call of scipy's nan-policy wrapper
    (O-IS's bootstrap calls it once per split per replicate: 7 of a cached demo re-run's 19 s)."""
    from scipy.special import rel_entr

    pk, qk = np.broadcast_arrays(pk, qk)
    with np.errstate(invalid="ignore"):
        qk = qk / np.sum(qk, axis=1, keepdims=True)
        pk = pk / np.sum(pk, axis=1, keepdims=True)
    return np.sum(rel_entr(pk, qk), axis=1)


class FidReplicator:
    """FID of weighted/resampled generated rows ``X`` (N, D) against fixed reference ``(mu_r, sigma_r)``.

    With at most ``D`` rows it uses the exact low-rank identity ``eig(Σ₁Σ₂)\\{0} = eig(Aᵀ Σ₂ A)``
    (``Σ₁ = A Aᵀ``): an eigen-decomposition of a symmetric ``u × u`` matrix (u = distinct rows drawn) built from
    the Gram matrix ``X Σ₂ Xᵀ`` (computed on the first replicate), instead of a general ``D × D`` eigenproblem.
    With more rows (real protocols: 30,000 images) it uses the reference's symmetric square root ``Σ_r^½``
    (``sqrt_r``: a function returning it, called once, on the first value that needs it; default: computed in this
    process, :func:`~tise_bench.features.refcache.reference_sqrt` without a disk cache) and
    :func:`frechet_distance_sqrt`: one symmetric ``D × D`` eigenvalue solve per value, on the weighted covariance of
    the distinct rows drawn. The low-rank path never asks for ``Σ_r^½``: its Gram ``X Σ_r Xᵀ`` costs what
    ``(X Σ_r^½)(X Σ_r^½)ᵀ`` would, without the eigendecomposition.
    """

    _CHUNK = 8192  # rows per float64 block of the covariance (128 MiB at D = 2048)

    def __init__(
        self,
        feats: np.ndarray,
        mu_r: np.ndarray,
        sigma_r: np.ndarray,
        names: tuple[str, str] = ("generated", "reference"),
        sqrt_r: Callable[[], np.ndarray] | None = None,
    ) -> None:
        self.x = feats  # as given (no float64 copy held while no replicate is asked for)
        self.names = names
        self.mu_r, self.sigma_r = np.asarray(mu_r, dtype=np.float64), np.asarray(sigma_r, dtype=np.float64)
        n, d = self.x.shape
        self.low_rank = n <= d
        self._gram: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._sqrt_fn = sqrt_r
        self._sqrt: np.ndarray | None = None

    def _grams(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._gram is None:  # x_i' Σ_r x_j, x_i' x_j, x_i' μ_r
            x = np.asarray(self.x, dtype=np.float64)
            self._gram = ((x @ self.sigma_r) @ x.T, x @ x.T, x @ self.mu_r)
        return self._gram

    def sqrt_r(self) -> np.ndarray:
        """``Σ_r^½``: from ``sqrt_r`` (a cache) on first use, then held."""
        if self._sqrt is None:
            self._sqrt = self._sqrt_fn() if self._sqrt_fn is not None else reference_sqrt(self.sigma_r)
        return self._sqrt

    def point(self) -> float:
        """FID of all rows. With at most ``D`` rows: the low-rank identity above (one symmetric ``N × N``
        eigenproblem on the Gram matrix the bootstrap replicates reuse) instead of a general ``D × D`` eigenproblem
        of ``Σ₁Σ₂`` — the same value up to round-off (≤ 1e-7 relative, tests; torch-fidelity parity ≤ 1e-6), and for
        N = 256, D = 2048 it replaces a 2048² non-symmetric eigensolve; with more rows :func:`frechet_distance_sqrt`
        on their covariance (one symmetric ``D × D`` eigenvalue solve; torch-fidelity parity ≤ 1e-6, tests)."""
        x = np.asarray(self.x)  # the checks fid_statistics + frechet_distance make (no float64 copy)
        if x.ndim != 2:
            _as_2d(x, "fid_statistics")  # raises, naming the shape
        _check_finite_rows(x, "fid_statistics")
        n = int(x.shape[0])
        if n < 2:
            raise ValueError(f"fid_statistics: a covariance needs at least 2 samples, got {n}")
        gen = (self.names[0], np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1])))
        _check_gaussians((gen, (self.names[1], self.mu_r, self.sigma_r)))
        return self.replicate(np.ones(n))

    def exact(self, rows: np.ndarray) -> float:
        """torch-fidelity's computation on ``X[rows]``: ``fid_statistics`` + :func:`frechet_distance` (a general
        ``D × D`` eigenproblem; the reference the tests compare the fast paths with)."""
        mu, sigma = fid_statistics(self.x[rows])
        return frechet_distance(mu, sigma, self.mu_r, self.sigma_r, names=self.names)

    def _sandwich(self, w_all: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """``(μ, Tr Σ, A Σ A)`` for the multiset where row i appears ``w_all[i]`` times: ``Σ`` its covariance
        (ddof 1) ``Zᵀ Z / (n − 1)`` with ``Z`` the distinct rows centred and scaled by ``√w_i``, ``A = Σ_r^½``.
        float64, in blocks of rows. ``A Σ A`` is formed as ``(Z A)ᵀ (Z A)`` with fewer than ``2D`` distinct rows
        (``3·u·D²`` flops), else as ``A (Zᵀ Z) A`` (``u·D² + 4·D³``): the same matrix, the cheaper way."""
        u = np.flatnonzero(w_all > 0)
        w = w_all[u]
        n = float(w.sum())
        d = int(self.x.shape[1])
        a = self.sqrt_r()
        blocks = [slice(lo, lo + self._CHUNK) for lo in range(0, len(u), self._CHUNK)]
        mu = np.zeros(d)
        for b in blocks:
            mu += w[b] @ np.asarray(self.x[u[b]], dtype=np.float64)
        mu /= n
        rows_first = len(u) < 2 * d
        acc, tr = np.zeros((d, d)), 0.0
        for b in blocks:
            z = (np.asarray(self.x[u[b]], dtype=np.float64) - mu) * np.sqrt(w[b])[:, None]
            tr += float(np.einsum("ij,ij->", z, z))
            if rows_first:
                z = z @ a
            acc += z.T @ z  # a symmetric rank-k update (numpy calls syrk for z.T @ z)
        m = acc if rows_first else a @ acc @ a
        return mu, tr / (n - 1.0), m / (n - 1.0)

    def replicate(self, row_weights: np.ndarray, rows: np.ndarray | None = None) -> float:
        """FID of the multiset where row i appears ``row_weights[i]`` times (``rows``: same multiset, ordered)."""
        w_all = np.asarray(row_weights, dtype=np.float64)
        n = float(w_all.sum())
        if n < 2:
            return math.nan
        if not self.low_rank:
            # frechet_distance_sqrt on the replicate's statistics, without forming Σ_g where (Z A)ᵀ(Z A) is cheaper
            mu, tr_g, m = self._sandwich(w_all)
            diff = mu - self.mu_r
            return float(diff @ diff + tr_g + np.trace(self.sigma_r) - 2.0 * _trace_sqrt_psd(m))
        gram, kern, xmu = self._grams()
        u = np.flatnonzero(w_all > 0)
        w = w_all[u]
        g, k = gram[np.ix_(u, u)], kern[np.ix_(u, u)]
        gw, kw = g @ w, k @ w
        wgw, wkw = float(w @ gw), float(w @ kw)
        # centred Gram (X_u − 1μ') Σ_r (X_u − 1μ')' with μ = Σ w_i x_i / n, then scaled by √w on both sides
        c = g - gw[:, None] / n - gw[None, :] / n + wgw / n**2
        sw = np.sqrt(w)
        lam = np.linalg.eigvalsh(c * sw[:, None] * sw[None, :] / (n - 1.0))
        tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
        tr_g = (float(w @ np.diag(k)) - wkw / n) / (n - 1.0)
        mean_term = wkw / n**2 - 2.0 * float(w @ xmu[u]) / n + float(self.mu_r @ self.mu_r)
        return mean_term + tr_g + float(np.trace(self.sigma_r)) - 2.0 * tr_covmean

    def __call__(self, rows: np.ndarray) -> float:
        """FID of ``X[rows]`` (ordered rows of one replicate, duplicates kept): a :class:`RowsResampler` score."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.replicate(np.bincount(rows, minlength=self.x.shape[0]), rows)


def reference_sqrt_of(ctx: MetricContext, sigma_r: np.ndarray) -> Callable[[], np.ndarray]:
    """``sqrt_r`` for :class:`FidReplicator`: ``Σ_r^½`` from the run's cache (``ctx.extra['cache_dir']``,
    ``<cache>/stats/sqrt-<key>.npz``), computed and written there on first use; memory only without a cache."""
    cache = ctx.extra.get("cache_dir")
    return lambda: reference_sqrt(sigma_r, cache)


SPLIT_MODES = ("torch_fidelity", "tise")

#: Images per IS split below which IS / IS* are not comparable to published numbers: the smallest split of the
#: published protocols, TISE's CUB (the 2,933 test images x 10 captions = 29,330 images in 10 splits). TISE's
#: COCO uses 30,000 images in 10 splits (3,000 per split); torch-fidelity's defaults and Salimans et al. 2016
#: 50,000 images in 10 splits (5,000). IS grows with the split size, so smaller splits read low.
IS_MIN_SPLIT_SIZE = 2933
#: Samples per side below which a Fréchet distance on 2048-d pool3 features is not comparable: Heusel et al.'s
#: TTUR README ("we recommend using a minimum sample size of 10,000 to calculate the FID otherwise the true FID
#: of the generator is underestimated"); FID's bias grows as 1/N (Chong & Forsyth 2020, who use 50,000; TISE
#: and clean-fid's COCO protocol use 30,000). We take the minimum recommendation, 10,000.
FID_MIN_SAMPLES = 10000
_TTUR = "Heusel et al. 2017, TTUR README: at least 10,000"


def split_size(value: MetricValue) -> float | None:
    """Images (or crops) per IS split of ``value``: the samples used over ``extras['splits']``."""
    splits = value.extras.get("splits")
    used = value.extras.get("n_crops_used", value.n)
    return float(used) / float(splits) if splits else None


IS_SMALL_N = (
    MinComparable(
        "images per split",
        IS_MIN_SPLIT_SIZE,
        split_size,
        "TISE's CUB protocol: 29,330 images in 10 splits; COCO 30,000 in 10",
    ),
)
FID_SMALL_N = (
    MinComparable("generated images", FID_MIN_SAMPLES, n_count, _TTUR),
    MinComparable("reference images", FID_MIN_SAMPLES, extra_count("n_reference"), _TTUR),
)


@dataclass(frozen=True)
class ISParams:
    splits: int = 10
    seed: int = 2020  # torch-fidelity's split permutation seed (split_mode torch_fidelity)
    split_mode: str = "torch_fidelity"  # torch_fidelity | tise (contiguous splits in image order, no shuffle)


@dataclass(frozen=True)
class ISStarParams(ISParams):
    network: str = "inception"  # inception | bird_classifier (TISE's CUB IS*; set by data=cub)
    temperature: float | None = None  # None = TISE's calibration of the network (COCO_TEMPERATURE / BIRD_TEMPERATURE)
    split_mode: str = "tise"  # TISE's inception_score_star_coco.py: 10 contiguous splits, no shuffle


def split_mode(params: dict[str, Any], metric: str) -> str:
    """``params['split_mode']``, validated against :data:`SPLIT_MODES`."""
    mode = str(params["split_mode"])
    if mode not in SPLIT_MODES:
        raise ConfigError(
            f"metrics.params.{metric}.split_mode={mode!r}: valid values are {', '.join(SPLIT_MODES)} "
            "(torch_fidelity: seeded shuffle, split at i·N//splits; tise: TISE's own loop)"
        )
    return mode


def _logsumexp0(log_p: np.ndarray) -> np.ndarray:
    m = log_p.max(axis=0, keepdims=True)
    return m + np.log(np.exp(log_p - m).sum(axis=0, keepdims=True))


def _nan(reason: str, **extras: Any) -> MetricValue:
    return MetricValue(value=float("nan"), n=0, extras={"reason": reason, **extras})


def _is_value(
    ctx: MetricContext, params: dict[str, Any], temperature: float, metric: str, key: str = LOGITS
) -> MetricValue:
    logits = ctx.gen(key)
    splits, seed = int(params["splits"]), int(params["seed"])
    mode = split_mode(params, metric)
    if logits.shape[0] == 0:
        return _nan("no generated images", temperature=temperature, split_mode=mode)
    # tise = inception_score_star_coco.py: contiguous i·N//splits splits in the images' order, no shuffle
    mean, std, scores = inception_score(
        logits, temperature=temperature, splits=splits, seed=seed, shuffle=mode == "torch_fidelity"
    )

    def score(rows: np.ndarray) -> float:  # the same procedure on a replicate's images, in its order
        return (
            inception_score(
                logits[rows], temperature=temperature, splits=splits, seed=seed, shuffle=mode == "torch_fidelity"
            )[0]
            if len(rows)
            else math.nan
        )

    return MetricValue(
        value=mean,
        n=int(logits.shape[0]),
        std=std,
        resample=ctx.rows_resampler(score, "is"),
        extras={
            "temperature": temperature,
            "splits": len(scores),
            "split_mode": mode,
            "split_scores": scores,
            "feature": key,
        },
    )


@register_metric(
    "is",
    display="IS",
    higher_is_better=True,
    version="1",
    subset="realism",
    unit="score",
    citation="Salimans et al. 2016, Improved Techniques for Training GANs",
    needs=(Need("inception", "logits_unbiased", "gen"),),
    params=ISParams,
    min_comparable=IS_SMALL_N,
)
def compute_is(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Inception Score exp(E KL(p(y|x) ‖ p(y))) on the 1008-way ``logits_unbiased`` of inception-v3-compat, 10
    splits — equals torch-fidelity.

    Params: splits, seed,
    split_mode (torch_fidelity | tise)."""
    return _is_value(ctx, params, 1.0, "is")


@register_metric(
    "is_star",
    display="IS*",
    higher_is_better=True,
    version="1",
    subset="realism",
    unit="score",
    citation="Dinh et al. 2022, TISE: Bag of Metrics for Text-to-Image Synthesis Evaluation",
    needs=(Need("inception", "logits_unbiased", "gen"),),
    params=ISStarParams,
    min_comparable=IS_SMALL_N,
)
def compute_is_star(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Calibrated IS (TISE): IS on softmax(z/T); COCO: T = 0.9091363549232483 on inception-v3-compat with TISE's
    contiguous splits; data=cub: TISE's bird classifier, T = 0.5980541706085205.

    Params: network (inception | bird_classifier), temperature (COCO
    0.9091363549232483 with inception-v3-compat; CUB 0.5980541706085205 with TISE's bird classifier), splits,
    seed, split_mode (torch_fidelity | tise)."""
    network = is_star_network(params)
    t = params["temperature"] if params["temperature"] is not None else TISE_TEMPERATURE[network]
    mv = _is_value(ctx, params, float(t), "is_star", IS_STAR_NETWORKS[network].key)
    return dataclasses.replace(mv, extras={**mv.extras, "network": network})


def is_star_network(params: dict[str, Any]) -> str:
    """``params['network']``: ``inception`` (inception-v3-compat logits_unbiased, TISE's COCO IS*) or
    ``bird_classifier`` (TISE's CUB IS*: the bird-fine-tuned Inception, background logit dropped)."""
    network = str(params["network"])
    if network not in IS_STAR_NETWORKS:
        raise ConfigError(
            f"metrics.params.is_star.network={network!r}: valid values are "
            f"{', '.join(IS_STAR_NETWORKS)} (bird_classifier = TISE's CUB IS*)"
        )
    return network


def needs_is_star(params: dict[str, Any]) -> tuple[Need, ...]:
    return (IS_STAR_NETWORKS[is_star_network(params)],)


compute_is_star.needs_for = needs_is_star  # type: ignore[attr-defined]


@register_metric(
    "fid",
    display="FID",
    higher_is_better=False,
    version="1",
    subset="realism",
    unit="distance",
    citation="Heusel et al. 2017, GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
    min_comparable=FID_SMALL_N,
)
def compute_fid(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fréchet distance between the 2048-d pool3 statistics of the generated images and of the references (images
    or precomputed mu, sigma) — equals torch-fidelity.

    With at most 2048 generated images the trace term is computed in their row space (:meth:`FidReplicator.point`,
    one symmetric N x N eigenproblem, ~100x faster at N = 256): the exact value, which torch-fidelity's D x D
    formula matches to its round-off (3-4e-8 relative measured at N = 64-1000). With more, as the eigenvalues of the
    symmetric Σ_r^½ Σ_g Σ_r^½ (:func:`frechet_distance_sqrt`; Σ_r^½ computed once per reference and cached in
    ``<cache>/stats``): one symmetric 2048 x 2048 eigenvalue solve per value and bootstrap replicate instead of a
    general one, torch-fidelity's value to round-off (≤ 1e-6 relative, tests)."""
    feats = ctx.gen(POOL3)
    if feats.shape[0] < 2:
        return _nan(f"FID needs at least 2 generated images, got {feats.shape[0]}")
    mu_r, sigma_r = ctx.ref_stats(POOL3)
    fid = FidReplicator(feats, mu_r, sigma_r, sqrt_r=reference_sqrt_of(ctx, sigma_r))
    return MetricValue(
        value=fid.point(),
        n=int(feats.shape[0]),
        extras={"feature": POOL3},
        resample=ctx.rows_resampler(fid, "fid"),
    )


compute_fid.requires = reference_images_or_stats  # type: ignore[attr-defined]
