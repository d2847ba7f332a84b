"""CLIP-based relevance metrics: CLIP score (four conventions), RefCLIPScore, image-image similarity.

Pure functions over numpy arrays plus thin registered adapters. Metrics that need text embeddings expose
``texts_needed(records, params)`` (module functions, also attached to the compute function as
``.texts_needed``) so the runner can embed every text once before any metric runs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..errors import ConfigError
from ..registry import Need, register_metric
from ..types import MetricValue

CONVENTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clipscore": lambda c: 2.5 * np.maximum(c, 0.0),      # Hessel et al. 2021, w = 2.5
    "torchmetrics": lambda c: 100.0 * np.maximum(c, 0.0),  # torchmetrics CLIPScore
    "cosine": lambda c: c,
    "unit": lambda c: np.clip((c + 1.0) / 2.0, 0.0, 1.0),
}
IMAGE, TEXT = "clip.image", "clip.text"
_HESSEL = "Hessel et al. 2021, CLIPScore: A Reference-free Evaluation Metric for Image Captioning"


def clip_score_from_cos(cos: np.ndarray, convention: str) -> np.ndarray:
    """Map cosines to a CLIP-score convention.

    ``clipscore`` = 2.5·max(cos, 0) (Hessel et al. 2021); ``torchmetrics`` = 100·max(cos, 0);
    ``cosine`` = cos; ``unit`` = clip((cos + 1) / 2, 0, 1).
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown CLIP-score convention {convention!r} (metrics.params.clip_score.convention); "
                          f"valid: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[convention](np.asarray(cos, dtype=np.float64))


def ref_clip_score(clip_s: np.ndarray, text_ref_max_cos: np.ndarray) -> np.ndarray:
    """RefCLIPScore (Hessel et al. 2021): harmonic mean of CLIP-S and max(max_r cos(text, ref_r), 0).

    ``clip_s`` must already be in the ``clipscore`` convention (2.5·max(cos, 0)); ``H(a, b) = 2ab / (a + b)``
    with ``H(0, x) = 0`` (no division by zero).
    """
    a = np.asarray(clip_s, dtype=np.float64)
    b = np.maximum(np.asarray(text_ref_max_cos, dtype=np.float64), 0.0)
    denom = a + b
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.float64)
    ok = denom > 0
    np.divide(2.0 * a * b, denom, out=out, where=ok)
    return out


def category_means(values: np.ndarray, categories: Sequence[str | None]) -> tuple[dict[str, float], float]:
    """Per-category means of ``values`` and the unweighted mean of those means (``None`` categories ignored)."""
    v = np.asarray(values, dtype=np.float64)
    if len(categories) != v.shape[0]:
        raise ValueError(f"category_means: {v.shape[0]} values but {len(categories)} categories")
    groups: dict[str, list[float]] = {}
    for x, c in zip(v.tolist(), categories):
        if c is not None:
            groups.setdefault(str(c), []).append(x)
    means = {c: float(np.mean(xs)) for c, xs in sorted(groups.items())}
    return means, (float(np.mean(list(means.values()))) if means else float("nan"))


def pairwise_softmax_success(
    img_emb: np.ndarray, true_emb: np.ndarray, counter_emb: np.ndarray, logit_scale: float, threshold: float = 0.6,
) -> np.ndarray:
    """TISE's PA test: softmax(s·[cos(img, true), cos(img, counter)])[0] > threshold, per row.

    With two classes the softmax's first entry is ``sigmoid(s·(cos_true − cos_counter))``; rows are
    L2-normalised here.
    """
    i, t, c = l2_normalize(img_emb), l2_normalize(true_emb), l2_normalize(counter_emb)
    margin = logit_scale * ((i * t).sum(axis=1) - (i * c).sum(axis=1))
    p_true = 0.5 * (1.0 + np.tanh(0.5 * margin))  # overflow-free sigmoid
    return p_true > threshold


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (a 1-D input is one row) scaled to unit L2 norm, in float64; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def rowwise_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for aligned rows (normalises defensively)."""
    return (l2_normalize(a) * l2_normalize(b)).sum(axis=1)


def _scatter(values: np.ndarray, rows: list[int], n: int) -> np.ndarray:
    """Per-sample array aligned with all ``n`` samples: ``values`` at ``rows``, NaN for skipped samples."""
    out = np.full(n, np.nan)
    out[rows] = values
    return out


def with_prefix(text: str, prefix: str) -> str:
    """``prefix + " " + text`` when a prompt prefix (e.g. "A photo depicts") is set, else the text itself."""
    return f"{prefix} {text}" if prefix else text


def _prefix(params: dict[str, Any]) -> str:
    return str(params.get("prefix") or "").strip()


def texts_needed_clip_score(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """Texts ``clip_score`` looks up: every caption, with the optional prefix."""
    p = _prefix(params)
    return list(dict.fromkeys(with_prefix(r.caption, p) for r in records))


def texts_needed_ref_clip_score(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """Texts ``ref_clip_score`` looks up: captions and reference captions of records that have them."""
    p = _prefix(params)
    out = [with_prefix(t, p) for r in records if r.ref_captions for t in (r.caption, *r.ref_captions)]
    return list(dict.fromkeys(out))


def _cos_to_caption(ctx: MetricContext, prefix: str) -> tuple[np.ndarray, list[str]]:
    texts = [with_prefix(ctx.records[s.record_index].caption, prefix) for s in ctx.samples]
    if not texts:
        return np.zeros(0), texts
    return rowwise_cos(ctx.gen(IMAGE), ctx.text(texts)), texts


@register_metric(
    "clip_score", display="CLIP-S", higher_is_better=True, version="1", subset="realism", citation=_HESSEL,
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
)
def compute_clip_score(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Mean CLIP score of each image vs its caption. Params: convention (clipscore), prefix ("")."""
    convention = str(params.get("convention", "clipscore"))
    clip_score_from_cos(np.zeros(1), convention)  # validate before any work
    cos, texts = _cos_to_caption(ctx, _prefix(params))
    if cos.size == 0:
        return MetricValue(float("nan"), 0, extras={"convention": convention, "reason": "no generated images"})
    per = clip_score_from_cos(cos, convention)
    extras: dict[str, Any] = {
        "convention": convention,
        "conventions": {name: float(np.mean(clip_score_from_cos(cos, name))) for name in CONVENTIONS},
        "n_truncated": ctx.n_truncated(texts),
    }
    cats = [ctx.records[s.record_index].category for s in ctx.samples]
    if any(c is not None for c in cats):
        extras["per_category"], extras["category_mean"] = category_means(per, cats)
    return MetricValue(float(per.mean()), int(per.size), std=float(per.std()), per_sample=per, extras=extras)


compute_clip_score.texts_needed = texts_needed_clip_score  # type: ignore[attr-defined]


@register_metric(
    "ref_clip_score", display="RefCLIP-S", higher_is_better=True, version="1", subset="realism", citation=_HESSEL,
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
)
def compute_ref_clip_score(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """RefCLIPScore on samples whose record has ``ref_captions``; others are skipped and counted. Params: prefix."""
    prefix = _prefix(params)
    keep = [j for j, s in enumerate(ctx.samples) if ctx.records[s.record_index].ref_captions]
    skipped = {"no_ref_captions": len(ctx.samples) - len(keep)} if len(keep) < len(ctx.samples) else {}
    if not keep:
        return MetricValue(float("nan"), 0, skipped=skipped, extras={"reason": "no record has ref_captions"})
    recs = [ctx.records[ctx.samples[j].record_index] for j in keep]
    texts = [with_prefix(r.caption, prefix) for r in recs]
    t_emb = l2_normalize(ctx.text(texts))
    cos = rowwise_cos(ctx.gen(IMAGE)[keep], t_emb)
    ref_max = np.empty(len(recs))
    for i, r in enumerate(recs):  # reference sets differ in size; a loop over records is cheap
        refs = l2_normalize(ctx.text([with_prefix(c, prefix) for c in r.ref_captions]))
        ref_max[i] = float((refs @ t_emb[i]).max())
    per = ref_clip_score(clip_score_from_cos(cos, "clipscore"), ref_max)
    all_texts = texts + [with_prefix(c, prefix) for r in recs for c in r.ref_captions]
    return MetricValue(float(per.mean()), int(per.size), std=float(per.std()), skipped=skipped,
                       per_sample=_scatter(per, keep, len(ctx.samples)),
                       extras={"n_truncated": ctx.n_truncated(all_texts)})


compute_ref_clip_score.texts_needed = texts_needed_ref_clip_score  # type: ignore[attr-defined]


@register_metric(
    "clip_i2i", display="CLIP-I2I", higher_is_better=True, version="1", subset="realism",
    citation="Radford et al. 2021 (CLIP); image-image cosine as in Ruiz et al. 2023 (DreamBooth CLIP-I)",
    needs=(Need("clip", "image", "gen"), Need("clip", "image", "ref")),
)
def compute_clip_i2i(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """cos(generated image, reference image of the same record); samples without a reference are skipped."""
    row_of = {rec: row for row, rec in enumerate(ctx.ref_records)}
    keep = [j for j, s in enumerate(ctx.samples) if s.record_index in row_of]
    skipped = {"no_reference": len(ctx.samples) - len(keep)} if len(keep) < len(ctx.samples) else {}
    if not keep:
        return MetricValue(float("nan"), 0, skipped=skipped, extras={"reason": "no sample has a reference image"})
    ref = ctx.ref(IMAGE)[[row_of[ctx.samples[j].record_index] for j in keep]]
    per = rowwise_cos(ctx.gen(IMAGE)[keep], ref)
    return MetricValue(float(per.mean()), int(per.size), std=float(per.std()), skipped=skipped,
                       per_sample=_scatter(per, keep, len(ctx.samples)))
