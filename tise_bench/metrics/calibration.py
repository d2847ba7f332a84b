"""Temperature scaling (Guo et al. 2017) and expected calibration error, as TISE uses for IS*.

``fit_temperature`` finds ``T = argmin_T  −mean_i log softmax(z_i / T)[y_i]`` by L-BFGS on ``log T`` (so T
stays positive) in float64; ``expected_calibration_error`` is the standard 15-bin equal-width ECE
``Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|`` on the top-1 confidence.
"""

from __future__ import annotations

import numpy as np
import torch


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"calibration: need logits (N, C) and labels (N,), got {z.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"calibration: labels must lie in [0, {z.shape[1] - 1}], got range [{y.min()}, {y.max()}]")
    if not np.isfinite(z).all():
        raise ValueError(f"calibration: {int((~np.isfinite(z).all(axis=1)).sum())} logit rows contain NaN or inf")
    return z, y


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    z, y = _check(logits, labels)
    zt = torch.from_numpy(z) / temperature
    return float(torch.nn.functional.cross_entropy(zt, torch.from_numpy(y)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """Temperature T > 0 minimising the NLL of softmax(z / T) (L-BFGS over log T, float64, from T = 1)."""
    z, y = _check(logits, labels)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [log_t], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(zt / log_t.exp(), yt)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE over ``n_bins`` equal-width bins of top-1 confidence; bins are (lo, hi], the first [0, hi]."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[0] == 0:
        raise ValueError(f"expected_calibration_error: need probs (N, C) and labels (N,), got {p.shape}, {y.shape}")
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
