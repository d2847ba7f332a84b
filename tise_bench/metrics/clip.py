"""CLIP-based relevance metrics: CLIP score (four conventions), RefCLIPScore, image-image similarity.

Pure functions over numpy arrays plus thin registered adapters. Metrics that need text embeddings expose
``texts_needed(records, params)`` (module functions, also attached to the compute function as
``.texts_needed``) so the runner can embed every text once before any metric runs.

Each CLIP-S convention is its reference's formula (tests compare with from-scratch copies):

* ``clipscore`` — Hessel et al.'s ``clipscore.py``: text = "A photo depicts " + caption (also each reference
  for RefCLIP-S), per image 2.5·max(cos, 0), value = mean over images; RefCLIP-S = mean over images of the
  harmonic mean of that and max_r cos(candidate, reference_r).
* ``torchmetrics`` — ``torchmetrics.functional.multimodal.clip_score``: caption as given (no prefix),
  per sample 100·cos, value = max(mean, 0) (the set mean is clamped, not each sample).

Cosines are computed in float64 after dividing each row by its L2 norm; clipscore.py divides in the
features' own dtype (``x / sqrt(sum(x**2))`` for numpy ≥ 1.21, ``sklearn.preprocessing.normalize`` before:
the same maths), torchmetrics with ``x / x.norm(p=2)`` in the model dtype. Values agree to float32 round-off;
Hessel et al.'s published numbers used fp16 features on GPU (≈1e-3 relative).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..data.manifest import Record
from ..errors import ConfigError
from ..registry import Need, records_with, register_metric
from ..types import MetricValue

#: Per-sample value of each convention, from the cosine of an image and its (prefixed) caption.
CONVENTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clipscore": lambda c: 2.5 * np.maximum(c, 0.0),  # Hessel et al. 2021 (clipscore.py): w·max(cos, 0), w = 2.5
    "torchmetrics": lambda c: 100.0 * c,  # torchmetrics: per-sample 100·cos; the SET mean is clamped
    "cosine": lambda c: c,
    "unit": lambda c: np.clip((c + 1.0) / 2.0, 0.0, 1.0),
}
#: Caption prefix each convention's reference code uses when ``prefix`` is not given: Hessel et al.'s
#: clipscore.py prompts with "A photo depicts <caption>" (candidates and references); torchmetrics
#: embeds the caption as given; ``cosine`` / ``unit`` have no reference and use the caption as given.
DEFAULT_PREFIX: dict[str, str] = {"clipscore": "A photo depicts", "torchmetrics": "", "cosine": "", "unit": ""}
#: How each convention turns per-sample values into the metric value (see :func:`aggregate`).
AGGREGATION: dict[str, str] = {
    "clipscore": "mean_i 2.5*max(cos_i, 0)",
    "torchmetrics": "max(mean_i 100*cos_i, 0)",
    "cosine": "mean_i cos_i",
    "unit": "mean_i clip((cos_i + 1)/2, 0, 1)",
}
HESSEL_PREFIX = DEFAULT_PREFIX["clipscore"]
IMAGE, TEXT = "clip.image", "clip.text"
_HESSEL = "Hessel et al. 2021, CLIPScore: A Reference-free Evaluation Metric for Image Captioning"


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown CLIP-score convention {convention!r} (metrics.params.clip_score.convention); "
            f"valid: {', '.join(CONVENTIONS)}"
        )


def clip_score_from_cos(cos: np.ndarray, convention: str) -> np.ndarray:
    """Per-sample values of a CLIP-score convention from cosines.

    ``clipscore`` = 2.5·max(cos, 0) (Hessel et al. 2021); ``torchmetrics`` = 100·cos (torchmetrics'
    per-sample score before its set-level clamp, see :func:`aggregate`); ``cosine`` = cos;
    ``unit`` = clip((cos + 1) / 2, 0, 1).
    """
    _check_convention(convention)
    return CONVENTIONS[convention](np.asarray(cos, dtype=np.float64))


def aggregate(per_sample: np.ndarray, convention: str) -> float:
    """Set-level value from per-sample values: the mean, except ``torchmetrics`` = max(mean(100·cos), 0)
    (torchmetrics' ``CLIPScore.compute``: ``max(score_sum / n_samples, 0)`` — the mean is clamped, not each
    sample). NaN for an empty set."""
    _check_convention(convention)
    v = np.asarray(per_sample, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    m = float(v.mean())
    return max(m, 0.0) if convention == "torchmetrics" else m


def ref_clip_score(clip_s: np.ndarray, text_ref_max_cos: np.ndarray) -> np.ndarray:
    """RefCLIPScore (Hessel et al. 2021): harmonic mean of CLIP-S and max(max_r cos(text, ref_r), 0).

    ``clip_s`` must already be in the ``clipscore`` convention (2.5·max(cos, 0)); ``H(a, b) = 2ab / (a + b)``
    with ``H(0, x) = 0`` (no division by zero). clipscore.py computes ``2ab / (a + b)`` with the text-text
    max cosine unclamped; the two agree whenever that max cosine is ≥ 0 and not both terms are 0 (always the
    case for real CLIP text embeddings); below 0 the paper's definition (clamp at 0) is used here, where the
    code would give a negative, sign-flipped or infinite value.
    """
    a = np.asarray(clip_s, dtype=np.float64)
    b = np.maximum(np.asarray(text_ref_max_cos, dtype=np.float64), 0.0)
    denom = a + b
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.float64)
    ok = denom > 0
    np.divide(2.0 * a * b, denom, out=out, where=ok)
    return out


def category_means(
    values: np.ndarray,
    categories: Sequence[str | None],
    reduce: Callable[[np.ndarray], float] = lambda x: float(np.mean(x)),
) -> tuple[dict[str, float], float]:
    """Per-category ``reduce`` (mean) of ``values`` and the unweighted mean of those (``None`` categories ignored)."""
    v = np.asarray(values, dtype=np.float64)
    if len(categories) != v.shape[0]:
        raise ValueError(f"category_means: {v.shape[0]} values but {len(categories)} categories")
    groups: dict[str, list[float]] = {}
    for x, c in zip(v.tolist(), categories):
        if c is not None:
            groups.setdefault(str(c), []).append(x)
    means = {c: reduce(np.asarray(xs)) for c, xs in sorted(groups.items())}
    return means, (float(np.mean(list(means.values()))) if means else float("nan"))


def pairwise_softmax_success(
    img_emb: np.ndarray,
    true_emb: np.ndarray,
    counter_emb: np.ndarray,
    logit_scale: float,
    threshold: float = 0.6,
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
    """The text CLIP embeds: clipscore.py's rule — ``prefix`` plus one space unless it already ends with a
    space, then the caption (``"A photo depicts" + " " + caption``); an empty prefix leaves the caption as is."""
    if not prefix:
        return text
    return (prefix if prefix.endswith(" ") else prefix + " ") + text


def resolve_prefix(params: dict[str, Any], convention: str, metric: str = "clip_score") -> tuple[str, str]:
    """(prefix, source): ``params['prefix']`` when given (``""`` = no prefix), else the convention's reference
    default (:data:`DEFAULT_PREFIX`); ``source`` says which, for ``metrics.json``."""
    _check_convention(convention)
    given = params.get("prefix")
    if given is not None:
        return str(given), f"metrics.params.{metric}.prefix"
    return DEFAULT_PREFIX[convention], f"default of convention {convention}"


@dataclass(frozen=True)
class ClipScoreParams:
    convention: str = "clipscore"  # clipscore | torchmetrics | cosine | unit
    prefix: str | None = None  # None = the convention's reference default; "" = no prefix


@dataclass(frozen=True)
class RefClipScoreParams:
    prefix: str | None = None  # None = Hessel et al.'s "A photo depicts" on caption and references


def _convention(params: dict[str, Any]) -> str:
    return str(params["convention"])


def texts_needed_clip_score(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """Texts ``clip_score`` looks up: every caption, with the convention's (or the given) prefix."""
    p, _ = resolve_prefix(params, _convention(params))
    return list(dict.fromkeys(with_prefix(r.caption, p) for r in records))


def texts_needed_ref_clip_score(records: Sequence[Record], params: dict[str, Any]) -> list[str]:
    """Texts ``ref_clip_score`` looks up: captions and reference captions of records that have them, each with
    the prefix (Hessel et al.'s "A photo depicts" unless ``prefix`` is given)."""
    p, _ = resolve_prefix(params, "clipscore", "ref_clip_score")
    out = [with_prefix(t, p) for r in records if r.ref_captions for t in (r.caption, *r.ref_captions)]
    return list(dict.fromkeys(out))


def _cos_to_caption(ctx: MetricContext, prefix: str) -> tuple[np.ndarray, list[str]]:
    texts = [with_prefix(ctx.records[s.record_index].caption, prefix) for s in ctx.samples]
    if not texts:
        return np.zeros(0), texts
    return rowwise_cos(ctx.gen(IMAGE), ctx.text(texts)), texts


@register_metric(
    "clip_score",
    display="CLIP-S",
    higher_is_better=True,
    version="2",
    subset="realism",
    unit="score",
    citation=_HESSEL,
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
    params=ClipScoreParams,
)
def compute_clip_score(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Per image the CLIP cosine of image and caption, aggregated per convention: ``clipscore`` (default, as
    clipscore.py: caption prefixed "A photo depicts", mean of 2.5·max(cos, 0)), ``torchmetrics`` (no prefix,
    max(mean(100·cos), 0) over the set), ``cosine`` or ``unit`` (clip((cos+1)/2, 0, 1)).

    Params: convention (clipscore),
    prefix (null = the convention's reference default: "A photo depicts" for clipscore, none otherwise)."""
    convention = _convention(params)
    prefix, source = resolve_prefix(params, convention)  # validates the convention before any work
    base = {"convention": convention, "prefix": prefix, "prefix_source": source, "aggregation": AGGREGATION[convention]}
    cos, texts = _cos_to_caption(ctx, prefix)
    if cos.size == 0:
        return MetricValue(float("nan"), 0, extras={**base, "reason": "no generated images"})
    per = clip_score_from_cos(cos, convention)
    extras: dict[str, Any] = {**base, "mean_cosine": float(cos.mean()), "n_truncated": ctx.n_truncated(texts)}
    cats = [ctx.records[s.record_index].category for s in ctx.samples]
    if any(c is not None for c in cats):
        extras["per_category"], extras["category_mean"] = category_means(
            per, cats, reduce=lambda x: aggregate(x, convention)
        )
    return MetricValue(
        aggregate(per, convention),
        int(per.size),
        std=float(per.std()),
        per_sample=per,
        extras=extras,
        resample=ctx.mean_resampler(per, floor=0.0 if convention == "torchmetrics" else None),
    )


compute_clip_score.texts_needed = texts_needed_clip_score  # type: ignore[attr-defined]


@register_metric(
    "ref_clip_score",
    display="RefCLIP-S",
    higher_is_better=True,
    version="2",
    subset="realism",
    unit="score",
    citation=_HESSEL,
    needs=(Need("clip", "image", "gen"), Need("clip", "text", "text")),
    params=RefClipScoreParams,
)
def compute_ref_clip_score(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """RefCLIPScore: per image the harmonic mean of CLIP-S and max(max_r cos(caption, ref_caption_r), 0), mean
    over images whose record has ``ref_captions`` (others are skipped and counted).

    Params: prefix (null = Hessel et al.'s "A photo depicts", on the caption and on every reference)."""
    prefix, source = resolve_prefix(params, "clipscore", "ref_clip_score")
    base = {
        "prefix": prefix,
        "prefix_source": source,
        "aggregation": "mean_i H(2.5*max(cos(img_i, cap_i), 0), max(max_r cos(cap_i, ref_ir), 0))",
    }
    keep = [j for j, s in enumerate(ctx.samples) if ctx.records[s.record_index].ref_captions]
    skipped = {"no_ref_captions": len(ctx.samples) - len(keep)} if len(keep) < len(ctx.samples) else {}
    if not keep:
        return MetricValue(float("nan"), 0, skipped=skipped, extras={**base, "reason": "no record has ref_captions"})
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
    return MetricValue(
        float(per.mean()),
        int(per.size),
        std=float(per.std()),
        skipped=skipped,
        per_sample=_scatter(per, keep, len(ctx.samples)),
        extras={**base, "n_truncated": ctx.n_truncated(all_texts)},
        resample=ctx.mean_resampler(per, rows=keep),
    )


compute_ref_clip_score.texts_needed = texts_needed_ref_clip_score  # type: ignore[attr-defined]
compute_ref_clip_score.requires = records_with("ref_captions")  # type: ignore[attr-defined]


@register_metric(
    "clip_i2i",
    display="CLIP-I2I",
    higher_is_better=True,
    version="1",
    subset="realism",
    unit="score",
    citation="Radford et al. 2021 (CLIP); image-image cosine as in Ruiz et al. 2023 (DreamBooth CLIP-I)",
    needs=(Need("clip", "image", "gen"), Need("clip", "image", "ref")),
)
def compute_clip_i2i(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Mean over images of the cosine of the CLIP embeddings of the generated image and its record's reference
    image (images without a reference are skipped)."""
    row_of = {rec: row for row, rec in enumerate(ctx.ref_records)}
    keep = [j for j, s in enumerate(ctx.samples) if s.record_index in row_of]
    skipped = {"no_reference": len(ctx.samples) - len(keep)} if len(keep) < len(ctx.samples) else {}
    if not keep:
        return MetricValue(float("nan"), 0, skipped=skipped, extras={"reason": "no sample has a reference image"})
    ref = ctx.ref(IMAGE)[[row_of[ctx.samples[j].record_index] for j in keep]]
    per = rowwise_cos(ctx.gen(IMAGE)[keep], ref)
    return MetricValue(
        float(per.mean()),
        int(per.size),
        std=float(per.std()),
        skipped=skipped,
        per_sample=_scatter(per, keep, len(ctx.samples)),
        resample=ctx.mean_resampler(per, rows=keep),
    )
