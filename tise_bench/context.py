"""What a metric sees: one subset's records, the generated samples found for it, and their features.

Everything here is already computed (by the FeatureBank in one pass); a metric only does arithmetic.
Arrays returned by :meth:`gen` are aligned with ``samples``; :meth:`ref` with ``ref_records``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .data.manifest import Record
from .resampling import MeanResampler, RowsResampler


@dataclass(frozen=True)
class Sample:
    """One generated image: the ``k``-th sample for ``records[record_index]``."""

    record_index: int
    k: int
    path: str
    sha: str


@dataclass
class MetricContext:
    subset: str
    records: list[Record]
    samples: list[Sample]
    gen_features: dict[str, np.ndarray]
    ref_features: dict[str, np.ndarray] = field(default_factory=dict)
    ref_records: list[int] = field(default_factory=list)
    text_features: dict[str, np.ndarray] = field(default_factory=dict)
    text_truncated: set[str] = field(default_factory=set)
    #: text embeddings of backbones other than ``clip`` (e.g. ``hps``): backbone -> (text -> embedding, truncated)
    other_text: dict[str, tuple[dict[str, np.ndarray], set[str]]] = field(default_factory=dict)
    logit_scale: float = 100.0
    ref_stats_fn: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the feature pass's row of each sample: the order object crops are concatenated in (None: sample order)
    sample_rank: np.ndarray | None = None

    @property
    def sample_record(self) -> np.ndarray:
        return np.asarray([s.record_index for s in self.samples], dtype=np.int64)

    def mean_resampler(
        self,
        values: np.ndarray,
        *,
        rows: Any = None,
        groups: Any = None,
        row_weight: Any = None,
        scale: float = 1.0,
        floor: float | None = None,
    ) -> MeanResampler:
        """Resampling of a mean-type metric: ``values`` per row, row ``i`` belonging to sample ``rows[i]``
        (default: one row per sample); ``groups`` labels (words, classes) for an unweighted mean over groups."""
        owner = self.sample_record if rows is None else self.sample_record[np.asarray(rows, dtype=np.int64)]
        g = None if groups is None else np.unique(np.asarray([str(x) for x in groups]), return_inverse=True)[1]
        return MeanResampler(
            values=np.asarray(values, dtype=np.float64),
            prompt_of_row=owner,
            n_prompts=len(self.records),
            groups=g,
            row_weight=None if row_weight is None else np.asarray(row_weight, dtype=np.float64),
            scale=float(scale),
            floor=floor,
        )

    def rows_resampler(self, score: Callable[[np.ndarray], float], kind: str, *, crops: bool = False) -> RowsResampler:
        """Resampling of a set-level metric: ``score(rows)`` on the resampled samples' rows, or on their object
        crops' rows (``crops``: rows of ``crops.*``, visited in the feature pass's order)."""
        return RowsResampler(
            score=score,
            prompt_of_sample=self.sample_record,
            n_prompts=len(self.records),
            kind=kind,
            member_owner=self.gen("crops.owner").astype(np.int64) if crops else None,
            sample_rank=self.sample_rank if crops else None,
        )

    def gen(self, key: str) -> np.ndarray:
        if key not in self.gen_features:
            raise KeyError(
                f"feature {key!r} was not extracted for subset {self.subset!r}; declare it in the metric's needs"
            )
        return self.gen_features[key]

    def ref(self, key: str) -> np.ndarray:
        if key not in self.ref_features:
            raise KeyError(f"reference feature {key!r} was not extracted for subset {self.subset!r}")
        return self.ref_features[key]

    def ref_stats(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of the reference set for ``key`` — from an .npz or cached per eval set."""
        if self.ref_stats_fn is None:
            raise KeyError(f"no reference statistics available for subset {self.subset!r}")
        return self.ref_stats_fn(key)

    def _texts_of(self, backbone: str) -> tuple[dict[str, np.ndarray], set[str]]:
        if backbone == "clip":
            return self.text_features, self.text_truncated
        return self.other_text.get(backbone, ({}, set()))

    def text(self, texts: list[str], backbone: str = "clip") -> np.ndarray:
        """L2-normalised text embeddings of ``backbone`` (CLIP by default) for ``texts`` (all pre-computed in the
        single pass, for the metrics that declare ``Need(backbone, "text", "text")``)."""
        emb = self._texts_of(backbone)[0]
        missing = [t for t in texts if t not in emb]
        if missing:
            raise KeyError(f"{backbone} text embedding not pre-computed for {missing[0]!r}; the runner must collect it")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([emb[t] for t in texts])

    def n_truncated(self, texts: list[str], backbone: str = "clip") -> int:
        truncated = self._texts_of(backbone)[1]
        return sum(1 for t in set(texts) if t in truncated)
