"""Positional alignment (PA), TISE (Dinh et al. 2022), SPEC §3.

For each image of a pa record: success if softmax(s·[cos(img, caption), cos(img, counter_caption)])[0]
> threshold (TISE: 0.6; s = CLIP's logit scale). Per-word success rate; PA = 100 · unweighted mean over
positional words (so frequent words do not dominate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..registry import Need, records_with, register_metric
from ..types import MetricValue
from .clip import pairwise_softmax_success

_TISE = "Dinh et al. 2022, TISE: Bag of Metrics for Text-to-Image Synthesis Evaluation (ECCV)"


def per_word_rates(success: np.ndarray, words: Sequence[str]) -> tuple[dict[str, float], float]:
    """-> ({word: success rate}, unweighted mean of the rates)."""
    groups: dict[str, list[bool]] = {}
    for ok, w in zip(success.tolist(), words):
        groups.setdefault(w, []).append(bool(ok))
    rates = {w: float(np.mean(v)) for w, v in sorted(groups.items())}
    return rates, (float(np.mean(list(rates.values()))) if rates else float("nan"))


def texts_needed(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    out = [t for r in records if r.counter_caption and r.positional_word for t in (r.caption, r.counter_caption)]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class PAParams:
    threshold: float = 0.6  # TISE: success if softmax(s·[cos_true, cos_counter])[0] > 0.6


@register_metric(
    "pa",
    display="PA",
    higher_is_better=True,
    version="1",
    subset="pa",
    unit="percent",
    citation=_TISE,
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
    params=PAParams,
)
def compute_pa(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """100 · mean over positional words of the rate of softmax(s·[cos(img, caption), cos(img,
    counter-caption)])[0] > 0.6 (TISE's threshold, configurable)."""
    threshold = float(params["threshold"])
    keep = [
        i
        for i, s in enumerate(ctx.samples)
        if ctx.records[s.record_index].counter_caption and ctx.records[s.record_index].positional_word
    ]
    n_skip = len(ctx.samples) - len(keep)
    per = np.full(len(ctx.samples), np.nan)
    if not keep:
        return MetricValue(
            float("nan"),
            0,
            per_sample=per,
            skipped={"no_counter_caption": n_skip},
            extras={"reason": "no record has positional_word + counter_caption"},
        )
    recs = [ctx.records[ctx.samples[i].record_index] for i in keep]
    counters = [c for r in recs if (c := r.counter_caption)]
    assert len(counters) == len(recs), "keep holds only records with a counter caption"
    ok = pairwise_softmax_success(
        ctx.gen("clip.image")[keep], ctx.text([r.caption for r in recs]), ctx.text(counters), ctx.logit_scale, threshold
    )
    per[keep] = ok.astype(float)
    words = [str(r.positional_word) for r in recs]
    rates, mean = per_word_rates(ok, words)
    return MetricValue(
        100.0 * mean,
        len(keep),
        per_sample=per,
        resample=ctx.mean_resampler(ok.astype(float), rows=keep, groups=words, scale=100.0),
        extras={
            "threshold": threshold,
            "per_word": {w: 100.0 * r for w, r in rates.items()},
            "n_words": len(rates),
            "logit_scale": ctx.logit_scale,
        },
        skipped={"no_counter_caption": n_skip} if n_skip else {},
    )


compute_pa.texts_needed = texts_needed  # type: ignore[attr-defined]
compute_pa.requires = records_with("positional_word", "counter_caption")  # type: ignore[attr-defined]
