"""Core value types shared by metrics, the runner and the result writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricValue:
    """One metric's outcome on one model and eval set.

    ``per_sample`` (optional) is aligned with the samples of the subset the metric ran on and is
    written to the per-sample table; ``extras`` holds metric-specific details (per-category means,
    other conventions, split scores) and is copied verbatim into ``metrics.json``. ``resample`` (optional) is
    how the metric recomputes itself on prompt resamples of its subset (a
    :class:`~tise_bench.resampling.MeanResampler` or :class:`~tise_bench.resampling.RowsResampler`): the run
    writes its replicates for the leaderboard's intervals; it is not part of ``metrics.json``.
    """

    value: float
    n: int
    std: float | None = None
    per_sample: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    resample: Any = field(default=None, compare=False, repr=False)
    #: per-sample text columns for the per-sample table, aligned like ``per_sample``: ``{"reason": [...]}`` is
    #: written as the column ``<metric id>_reason`` (e.g. GenEval's failure reason); not part of ``metrics.json``
    sample_notes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _f(self.value), "n": int(self.n)}
        if self.std is not None:
            out["std"] = _f(self.std)
        if self.skipped:
            out["skipped"] = {k: int(v) for k, v in self.skipped.items()}
        out.update(self.extras)
        return out


def _f(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
