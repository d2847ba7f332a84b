"""Agreement statistics between a metric and human judgements: pure functions over two equal-length vectors.

* **Kendall τ-b and τ-c**: scipy's ``kendalltau(x, y, variant="b" | "c")`` (the reference implementation).
  τ-b = (C − D) / √((n₀ − n₁)(n₀ − n₂)) corrects for ties on either side; τ-c (Stuart's) =
  2(C − D) / (n² (m − 1) / m), m = the smaller number of distinct values of x and y, suits ratings on a
  short scale.
* **Spearman ρ**: scipy's ``spearmanr`` (Pearson correlation of average ranks).
* **Pairwise accuracy** with ties, ``acc_eq`` of Deutsch, Foster & Freitag (2023, "Ties Matter"): over all
  n(n−1)/2 pairs, the fraction the metric orders as the humans do, a pair tied on both sides counting as
  agreement and a pair tied on one side only as disagreement. Without ties it is Kocmi et al.'s (2021) pairwise
  accuracy; (τ-a + 1) / 2 when there are no ties at all.

Every function orients nothing: the caller negates lower-is-better metrics first so that agreement is positive.
Fewer than 3 pairs of finite values, or a constant vector, gives NaN (a correlation is undefined there).
"""

from __future__ import annotations

import math

import numpy as np

STATISTICS = ("kendall_tau_b", "kendall_tau_c", "spearman", "pairwise_accuracy")
MIN_ITEMS = 3


def _clean(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"agreement: expected two 1-D vectors of the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _undefined(x: np.ndarray, y: np.ndarray) -> bool:
    return len(x) < MIN_ITEMS or np.ptp(x) == 0 or np.ptp(y) == 0


def kendall_tau(x: np.ndarray, y: np.ndarray, variant: str = "b") -> float:
    """Kendall's τ-b or τ-c of ``x`` against ``y`` (scipy's estimator); NaN when undefined."""
    from scipy.stats import kendalltau

    x, y = _clean(x, y)
    if _undefined(x, y):
        return math.nan
    return float(kendalltau(x, y, variant=variant).statistic)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (average ranks for ties); NaN when undefined."""
    from scipy.stats import spearmanr

    x, y = _clean(x, y)
    if _undefined(x, y):
        return math.nan
    return float(spearmanr(x, y).statistic)


def _tied_pairs(*cols: np.ndarray) -> int:
    """Number of pairs equal in every column given (pairs within groups of identical rows)."""
    _, counts = np.unique(np.stack(cols, axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """``acc_eq`` (module docstring): fraction of pairs with ``sign(x_i − x_j) == sign(y_i − y_j)``.

    O(n log n) from pair counts: with n₀ = n(n−1)/2, n₁ / n₂ the pairs tied in x / in y and n₃ those tied in
    both, C + D = n₀ − n₁ − n₂ + n₃ and C − D = τ_b · √((n₀ − n₁)(n₀ − n₂)) (scipy's τ-b), so
    acc_eq = (C + n₃) / n₀. NaN with fewer than 3 items.
    """
    from scipy.stats import kendalltau

    x, y = _clean(x, y)
    n = len(x)
    if n < MIN_ITEMS:
        return math.nan
    n0 = n * (n - 1) // 2
    n1, n2, n3 = _tied_pairs(x), _tied_pairs(y), _tied_pairs(x, y)
    untied = float(n0 - n1) * float(n0 - n2)
    c_minus_d = 0.0 if untied == 0 else float(kendalltau(x, y, variant="b").statistic) * math.sqrt(untied)
    concordant = round(((n0 - n1 - n2 + n3) + c_minus_d) / 2)
    return (concordant + n3) / n0


def all_statistics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every statistic of :data:`STATISTICS` for one metric vector ``x`` against human scores ``y``."""
    return {
        "kendall_tau_b": kendall_tau(x, y, "b"),
        "kendall_tau_c": kendall_tau(x, y, "c"),
        "spearman": spearman(x, y),
        "pairwise_accuracy": pairwise_accuracy(x, y),
    }
