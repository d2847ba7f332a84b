"""Pure numpy building blocks of the prompt bootstrap: draws, index expansion and fast metric replicates.

Everything here is independent of files and caches so it can be tested on tiny synthetic arrays:

* :func:`draw_prompts` — ``(B, P)`` prompt indices, drawn with replacement from a seeded generator;
* :func:`expand` — ordered unit indices → ordered member rows through a CSR map (prompt → its samples,
  sample → its crops), so multi-sample prompts and multi-crop images come along whole;
* :func:`grouped_mean` — mean-type metrics for many replicates at once from a ``(B, N)`` weight matrix
  (weights = how often each row was drawn), including unweighted means over groups (PA words, SOA classes);
* :func:`fid_replicates` — FID per replicate. With at most ``D`` distinct generated rows it uses the exact
  low-rank identity ``eig(Σ₁Σ₂)\\{0} = eig(Aᵀ Σ₂ A)`` (``Σ₁ = A Aᵀ``), i.e. an eigen-decomposition of a
  symmetric ``u × u`` matrix (u = distinct rows drawn) built from the precomputed Gram matrix ``X Σ₂ Xᵀ``,
  instead of a general ``D × D`` eigenproblem per replicate; otherwise it calls the metric's own
  ``fid_statistics`` + ``frechet_distance`` on the resampled rows (bit-identical to the point FID for the
  identity resample).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..metrics.inception import fid_statistics, frechet_distance, inception_score, inception_score_tise_objects

#: IS split procedures of the metrics (metrics.json ``split_mode``): torch-fidelity's seeded shuffle, TISE's
#: contiguous ``i·N//splits`` splits in file order (IS, IS*), TISE's object loop (O-IS: N // splits per split,
#: remainder dropped)
IS_SPLITS = ("torch_fidelity", "tise", "tise_objects")


def draw_prompts(n_prompts: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_prompts)`` int64 prompt indices drawn uniformly with replacement."""
    return rng.integers(0, n_prompts, size=(n_boot, n_prompts), dtype=np.int64)


def csr_from_owner(owner: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR map unit → member rows from ``owner[row] = unit`` (−1 = no unit): ``(starts, lengths, order)``.

    ``order`` lists member rows grouped by unit, keeping the original row order inside a unit.
    """
    owner = np.asarray(owner, dtype=np.int64)
    keep = np.flatnonzero(owner >= 0)
    order = keep[np.argsort(owner[keep], kind="stable")]
    lengths = np.bincount(owner[keep], minlength=n_units).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths, order


def expand(units: np.ndarray, csr: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Member rows of ``units`` (in the given order, duplicates kept) through ``csr`` from :func:`csr_from_owner`."""
    starts, lengths, order = csr
    lens = lengths[units]
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts[units] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return order[np.arange(total, dtype=np.int64) + offsets]


def prompt_counts(draws: np.ndarray, n_prompts: int) -> np.ndarray:
    """``(B, P)`` float64: how often each prompt was drawn in each replicate."""
    b = draws.shape[0]
    counts = np.zeros((b, n_prompts), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(b), draws.shape[1]), draws.ravel()), 1.0)
    return counts


def grouped_mean(weights: np.ndarray, values: np.ndarray, groups: np.ndarray | None = None,
                 row_weight: np.ndarray | None = None) -> np.ndarray:
    """Per replicate: unweighted mean over groups of the ``weights``-weighted mean of ``values`` in each group.

    ``weights`` (B, N) row multiplicities; ``values`` (N,) per-row values, NaN = not scored (ignored);
    ``groups`` (N,) int group ids (None = one group); ``row_weight`` (N,) an extra weight per row (SOA-I
    counts each image once per named class). A group with no drawn scored row is left out of that
    replicate's mean, as the metric leaves out a word/class with no images. Returns (B,), NaN when empty.
    """
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    w = weights[:, ok] * (1.0 if row_weight is None else np.asarray(row_weight, dtype=np.float64)[ok])
    v = values[ok]
    g = np.zeros(len(v), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)[ok]
    n_groups = int(g.max()) + 1 if len(g) else 0
    onehot = np.zeros((len(v), n_groups))
    onehot[np.arange(len(v)), g] = 1.0
    den = w @ onehot
    num = (w * v) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        per_group = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        present = den > 0
        out = np.where(present.any(axis=1), np.nansum(per_group, axis=1) / np.maximum(present.sum(axis=1), 1), np.nan)
    return out


def is_replicates(logits: np.ndarray, row_lists: Sequence[np.ndarray], temperature: float, splits: int,
                  seed: int, split_mode: str = "torch_fidelity") -> np.ndarray:
    """IS (mean over splits, as the metric) of ``logits[rows]`` for each replicate's ordered row list, with the
    metric's split procedure (:data:`IS_SPLITS`); a replicate the procedure cannot score is NaN."""
    if split_mode not in IS_SPLITS:
        raise ValueError(f"is_replicates: split_mode {split_mode!r} is not one of {IS_SPLITS}")
    out = np.full(len(row_lists), np.nan)
    for b, rows in enumerate(row_lists):
        if split_mode == "tise_objects":
            if len(rows) >= max(splits, 1):
                out[b] = inception_score_tise_objects(logits[rows], temperature=temperature, splits=splits)[0]
        elif len(rows) >= 1:
            out[b] = inception_score(logits[rows], temperature=temperature, splits=splits, seed=seed,
                                     shuffle=split_mode == "torch_fidelity")[0]
    return out


class FidReplicator:
    """FID of weighted/resampled generated rows ``X`` (N, D) against fixed reference ``(mu_r, sigma_r)``."""

    def __init__(self, feats: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> None:
        self.x = np.asarray(feats, dtype=np.float64)
        self.mu_r, self.sigma_r = np.asarray(mu_r, dtype=np.float64), np.asarray(sigma_r, dtype=np.float64)
        n, d = self.x.shape
        self.low_rank = n <= d
        if self.low_rank:
            xs = self.x @ self.sigma_r
            self.g = xs @ self.x.T  # x_i' Σ_r x_j
            self.k = self.x @ self.x.T  # x_i' x_j
            self.xmu = self.x @ self.mu_r
            self.tr_r = float(np.trace(self.sigma_r))
            self.mumu = float(self.mu_r @ self.mu_r)

    def exact(self, rows: np.ndarray) -> float:
        """The metric's own computation on ``X[rows]``."""
        mu, sigma = fid_statistics(self.x[rows])
        return frechet_distance(mu, sigma, self.mu_r, self.sigma_r, names=("generated", "reference"))

    def replicate(self, row_weights: np.ndarray, rows: np.ndarray | None = None) -> float:
        """FID of the multiset where row i appears ``row_weights[i]`` times (``rows``: same multiset, ordered)."""
        w_all = np.asarray(row_weights, dtype=np.float64)
        n = float(w_all.sum())
        if n < 2:
            return math.nan
        if not self.low_rank:
            if rows is None:
                rows = np.repeat(np.arange(len(w_all)), w_all.astype(np.int64))
            return self.exact(rows)
        u = np.flatnonzero(w_all > 0)
        w = w_all[u]
        g, k = self.g[np.ix_(u, u)], self.k[np.ix_(u, u)]
        gw, kw = g @ w, k @ w
        wgw, wkw = float(w @ gw), float(w @ kw)
        # centred Gram (X_u − 1μ') Σ_r (X_u − 1μ')' with μ = Σ w_i x_i / n, then scaled by √w on both sides
        c = g - gw[:, None] / n - gw[None, :] / n + wgw / n ** 2
        sw = np.sqrt(w)
        lam = np.linalg.eigvalsh(c * sw[:, None] * sw[None, :] / (n - 1.0))
        tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
        tr_g = (float(w @ np.diag(k)) - wkw / n) / (n - 1.0)
        mean_term = wkw / n ** 2 - 2.0 * float(w @ self.xmu[u]) / n + self.mumu
        return mean_term + tr_g + self.tr_r - 2.0 * tr_covmean


def percentile_ci(reps: np.ndarray, level: float) -> list[float]:
    """Percentile interval of the finite replicates; [nan, nan] when there are none."""
    r = np.asarray(reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return [math.nan, math.nan]
    a = (1.0 - level) / 2.0
    return [float(np.quantile(r, a)), float(np.quantile(r, 1.0 - a))]


def two_sided_p(diffs: np.ndarray) -> float:
    """Bootstrap p-value for diff = 0: 2·min(P(d* ≤ 0), P(d* ≥ 0)), clipped to [1/B, 1] (B finite replicates)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        return math.nan
    p = 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0)))
    return float(min(max(p, 1.0 / len(d)), 1.0))
