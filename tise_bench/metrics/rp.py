"""CLIP R-precision (RP): is an image's own caption ranked first among distractor captions?

Candidate protocol (deterministic, documented so it can be reproduced exactly):

* one ``np.random.default_rng(seed)`` for the whole call; images are visited in order;
* an image with a ``mismatched`` list uses exactly those pool entries (duplicates and its own true entry
  removed) and consumes no randomness;
* otherwise its distractors are ``rng.choice(m, n_distractors, replace=False)`` over the ``m`` drawable
  pool entries other than its true one (in pool order); if ``m ≤ n_distractors`` all ``m`` are used and no
  randomness is consumed.

Pool entries are assumed to be *distinct texts*: the adapter deduplicates captions, so two records sharing
a caption share one pool entry and that text is never a distractor for either of them.

Ties: a distractor whose cosine is within ``TIE_TOL`` of the true caption's, or above it, is ranked
above the true caption (pessimistic), so a tie is a miss at ``top_k = 1``. Float round-off can therefore
never turn an exact tie (e.g. two texts with identical embeddings) into a hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..registry import MinComparable, Need, extra_count, register_metric
from ..types import MetricValue
from .clip import IMAGE, l2_normalize

TIE_TOL = 1e-6
#: Candidates per image below which RP is not comparable to published numbers: TISE's and Park et al.'s protocol
#: ranks the true caption against 99 distractors (100 candidates); with fewer, chance alone scores higher.
RP_MIN_CANDIDATES = 100
_CHUNK = 1024


def draw_candidates(
    true_idx: np.ndarray,
    n_pool: int,
    n_distractors: int = 99,
    seed: int = 0,
    mismatched: Sequence[Sequence[int] | None] | None = None,
    n_drawable: int | None = None,
) -> list[np.ndarray]:
    """Distractor pool indices per image, following the module's candidate protocol.

    Only the first ``n_drawable`` pool entries (default all) may be drawn at random — the rest are texts
    that only appear in ``mismatched`` lists.
    """
    rng = np.random.default_rng(seed)
    drawable = n_pool if n_drawable is None else n_drawable
    out: list[np.ndarray] = []
    for i, t in enumerate(np.asarray(true_idx, dtype=np.int64).tolist()):
        given = mismatched[i] if mismatched is not None else None
        if given is not None and len(given) > 0:
            out.append(np.asarray([m for m in dict.fromkeys(int(x) for x in given) if m != t], dtype=np.int64))
            continue
        own = 1 if 0 <= t < drawable else 0
        m = drawable - own
        if m <= n_distractors:
            pick = np.arange(m, dtype=np.int64)
        else:
            pick = rng.choice(m, size=n_distractors, replace=False).astype(np.int64)
        if own:
            pick = pick + (pick >= t)  # skip over the true entry
        out.append(pick)
    return out


def hits_from_candidates(
    img_emb: np.ndarray,
    true_idx: np.ndarray,
    text_emb_pool: np.ndarray,
    candidates: Sequence[np.ndarray],
    top_k: int = 1,
) -> np.ndarray:
    """hit_i = #{d ∈ candidates_i : cos(img_i, d) ≥ cos(img_i, true_i) − TIE_TOL} < top_k (vectorised)."""
    img, pool = l2_normalize(img_emb), l2_normalize(text_emb_pool)
    true_idx = np.asarray(true_idx, dtype=np.int64)
    n = img.shape[0]
    if not (len(true_idx) == len(candidates) == n):
        raise ValueError(f"r-precision: {n} images, {len(true_idx)} true indices, {len(candidates)} candidate lists")
    width = max((len(c) for c in candidates), default=0)
    cand = np.zeros((n, width), dtype=np.int64)
    valid = np.zeros((n, width), dtype=bool)
    for i, c in enumerate(candidates):
        cand[i, : len(c)], valid[i, : len(c)] = c, True
    hits = np.empty(n, dtype=bool)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(lo + _CHUNK, n))
        sims = img[sl] @ pool.T
        rows = np.arange(sims.shape[0])
        s_true = sims[rows, true_idx[sl]]
        s_cand = sims[rows[:, None], cand[sl]]
        above = (s_cand >= s_true[:, None] - TIE_TOL) & valid[sl]
        hits[sl] = above.sum(axis=1) < top_k
    return hits


def r_precision_hits(
    img_emb: np.ndarray,
    true_idx: np.ndarray,
    text_emb_pool: np.ndarray,
    n_distractors: int = 99,
    top_k: int = 1,
    seed: int = 0,
    mismatched: Sequence[Sequence[int] | None] | None = None,
) -> np.ndarray:
    """Per-image R-precision hits (Park et al. 2021 CLIP-R-precision; TISE, Dinh et al. 2022).

    ``img_emb`` (N, D) and ``text_emb_pool`` (P, D) are embeddings (normalised here); ``true_idx[i]`` is the
    pool row of image i's caption; ``mismatched[i]`` (optional) lists pool rows to use as its distractors.
    Candidates follow the module protocol; with fewer than ``n_distractors`` other pool entries all of them
    are used (see :func:`draw_candidates` to get the counts).
    """
    cands = draw_candidates(true_idx, len(text_emb_pool), n_distractors, seed, mismatched)
    return hits_from_candidates(img_emb, true_idx, text_emb_pool, cands, top_k)


def split_std(hits: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, list[float]]:
    """Population std of 100·mean(hit) over ``splits`` seeded random splits (``splits`` capped at N)."""
    n = len(hits)
    if n == 0:
        return float("nan"), []
    parts = np.array_split(np.random.default_rng(seed).permutation(n), min(splits, n))
    scores = [float(100.0 * hits[p].mean()) for p in parts]
    return float(np.std(scores)), scores


def _pool(records: Sequence[Record]) -> tuple[list[str], int]:
    captions = list(dict.fromkeys(r.caption for r in records))
    seen = set(captions)
    extra = [m for r in records for m in r.mismatched if m not in seen]
    return captions + list(dict.fromkeys(extra)), len(captions)


def texts_needed(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """Every text RP ranks: the subset's captions (deduplicated) and all ``mismatched`` caption strings."""
    return _pool(records)[0]


@dataclass(frozen=True)
class RPParams:
    n_distractors: int = 99  # TISE: 99 mismatched captions per image (100 candidates)
    top_k: int = 1
    seed: int = 0
    splits: int = 10


@register_metric(
    "clip_rp",
    display="RP",
    higher_is_better=True,
    version="1",
    subset="rp",
    unit="percent",
    citation="Park et al. 2021 (CLIP R-precision); Dinh et al. 2022, TISE",
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
    params=RPParams,
    min_comparable=(
        MinComparable(
            "candidates per image",
            RP_MIN_CANDIDATES,
            extra_count("n_candidates"),  # the fewest any image was ranked against
            "TISE / Park et al. 2021: 1 true + 99 distractors",
        ),
    ),
)
def compute_clip_rp(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """R-precision: 100·P(the true caption ranks first among it and 99 seeded distractors — or the record's
    released ``mismatched`` list — by CLIP cosine); std over 10 splits.

    Params: n_distractors (99), top_k (1), seed (0), splits (10)."""
    n_dis, top_k, seed, splits = (int(params[k]) for k in ("n_distractors", "top_k", "seed", "splits"))
    if not ctx.samples:
        return MetricValue(float("nan"), 0, extras={"reason": "no generated images", "top_k": top_k})
    texts, n_captions = _pool(ctx.records)
    index = {t: i for i, t in enumerate(texts)}
    recs = [ctx.records[s.record_index] for s in ctx.samples]
    true_idx = np.asarray([index[r.caption] for r in recs], dtype=np.int64)
    mism = [[index[m] for m in r.mismatched] or None for r in recs]
    pool = ctx.text(texts)
    cands = draw_candidates(true_idx, len(texts), n_dis, seed, mism, n_drawable=n_captions)
    hits = hits_from_candidates(ctx.gen(IMAGE), true_idx, pool, cands, top_k)
    std, scores = split_std(hits, splits, seed)
    n_cand = np.asarray([1 + len(c) for c in cands])
    extras: dict[str, Any] = {
        "top_k": top_k,
        "n_candidates": int(n_cand.min()),
        "n_candidates_max": int(n_cand.max()),
        "n_short_pool": int(sum(1 for c, m in zip(cands, mism) if m is None and len(c) < n_dis)),
        "n_with_mismatched": int(sum(m is not None for m in mism)),
        "split_scores": scores,
        "n_truncated": ctx.n_truncated(texts),
    }
    return MetricValue(
        float(100.0 * hits.mean()),
        int(hits.size),
        std=std,
        per_sample=hits.astype(np.float64),
        extras=extras,
        resample=ctx.mean_resampler(hits.astype(np.float64), scale=100.0),
    )


compute_clip_rp.texts_needed = texts_needed  # type: ignore[attr-defined]
