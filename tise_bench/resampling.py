"""The prompt bootstrap's building blocks: seeded draws, index expansion and the resamplers metrics return.

A metric owns its resampling: ``compute`` returns a :class:`~tise_bench.types.MetricValue` whose ``resample``
recomputes the metric on prompt resamples of its subset — ``(B, P)`` prompt indices drawn with replacement
in, ``(B,)`` values out. Two shapes cover every metric so far:

* :class:`MeanResampler` — a (grouped) mean of per-row values: CLIP-S, RP, PA (unweighted over positional
  words), SOA-C (unweighted over classes, one row per image and named class), SOA-I, CA ...; all replicates
  at once from a ``(B, N)`` matrix of row multiplicities (:func:`grouped_mean`);
* :class:`RowsResampler` — a set-level statistic recomputed on each replicate's rows: IS family on logits,
  FID family on pool3 features (``metrics.inception.FidReplicator``), over images or their object crops.

Every draw of a prompt brings all of its samples (multi-sample prompts), and every sample all of its object
crops. Pure numpy; the run (:mod:`tise_bench.bootstrap`) draws and writes the replicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Resampler kinds: ``mean`` replicates are cheap (``bootstrap.replicates``); ``is`` / ``fid`` recompute a
#: set-level statistic from features on every replicate (``bootstrap.replicates_features``).
KINDS = ("mean", "is", "fid")
_CHUNK = 64  # replicates per (B, N) weight matrix: bounds memory for 30k-prompt subsets


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


def grouped_mean(
    weights: np.ndarray, values: np.ndarray, groups: np.ndarray | None = None, row_weight: np.ndarray | None = None
) -> np.ndarray:
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


@dataclass(frozen=True)
class MeanResampler:
    """Replicates of ``scale · grouped_mean(values)`` (optionally ``max(·, floor)``), rows tied to prompts.

    ``values`` (N,) per row, NaN = not scored; ``prompt_of_row`` (N,) the prompt of each row; ``groups`` (N,)
    int group ids for an unweighted mean over groups (PA words, SOA-C classes); ``row_weight`` (N,) an extra
    weight per row; ``floor`` a lower clamp of the set-level mean (torchmetrics' CLIP score).
    """

    values: np.ndarray
    prompt_of_row: np.ndarray
    n_prompts: int
    groups: np.ndarray | None = None
    row_weight: np.ndarray | None = None
    scale: float = 1.0
    floor: float | None = None
    kind: str = "mean"

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        draws = np.atleast_2d(np.asarray(draws, dtype=np.int64))
        rows = np.asarray(self.prompt_of_row, dtype=np.int64)
        out = np.empty(draws.shape[0])
        for lo in range(0, draws.shape[0], _CHUNK):
            w = prompt_counts(draws[lo : lo + _CHUNK], self.n_prompts)[:, rows]
            out[lo : lo + _CHUNK] = self.scale * grouped_mean(w, self.values, self.groups, self.row_weight)
        return out if self.floor is None else np.maximum(out, self.floor)  # NaN stays NaN


@dataclass(frozen=True)
class RowsResampler:
    """Replicates of a set-level ``score(rows)``: the ordered rows (duplicates kept) of each replicate.

    ``prompt_of_sample`` (S,) the prompt of each sample; rows are samples, or — with ``member_owner`` (M,),
    the sample of each member row (object crops) — members, visited in the order of ``sample_rank`` (S,):
    the feature pass's row of each sample, which is the order crops were concatenated in (an order-dependent
    score such as TISE's O-IS split loop then reproduces its point value on the identity resample).
    ``score`` returns NaN for a replicate it cannot score.
    """

    score: Callable[[np.ndarray], float]
    prompt_of_sample: np.ndarray
    n_prompts: int
    kind: str
    member_owner: np.ndarray | None = None
    sample_rank: np.ndarray | None = None

    def rows(self, draws: np.ndarray) -> list[np.ndarray]:
        draws = np.atleast_2d(np.asarray(draws, dtype=np.int64))
        csr = csr_from_owner(self.prompt_of_sample, self.n_prompts)
        members = None if self.member_owner is None else csr_from_owner(self.member_owner, len(self.prompt_of_sample))
        out = []
        for d in draws:
            r = expand(d, csr)
            if self.sample_rank is not None:
                r = r[np.argsort(np.asarray(self.sample_rank)[r], kind="stable")]
            out.append(r if members is None else expand(r, members))
        return out

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        return np.asarray([self.score(r) for r in self.rows(draws)], dtype=np.float64)
