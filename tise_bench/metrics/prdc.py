"""k-NN manifold metrics: precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020).

Pure functions over two feature arrays (generated, reference) plus thin registered adapters reading Inception
pool3 features of the generated images and of the subset's reference images — or another image feature both
sides have in the bank (``metrics.params.<id>.feature``, e.g. ``clip.image``, as dgm-eval computes these on any
encoder). ``r_k(z)`` is the distance from ``z`` to its k-th nearest neighbour in its own set, found as the
(k+1)-th smallest distance with ``z`` itself counted (both references do this: ``kthvalue(k + 1)`` /
``get_kth_value(k=nearest_k + 1)``).

* **precision, recall** — torch-fidelity's ``prc`` (``torch_fidelity/metric_prc.py``,
  ``calculate_precision_recall_full``), argument order as there: ``features_1`` = generated (input1),
  ``features_2`` = real (input2); ``prc_neighborhood`` k = 3 (``defaults.py``); non-strict ``<=``:
  precision = mean over generated g of 1[∃ real x: d(g, x) <= r_k(x)],
  recall = mean over real x of 1[∃ generated g: d(x, g) <= r_k(g)].
* **density, coverage** — the authors' ``prdc/prdc.py`` (clovaai/generative-evaluation-prdc, ``compute_prdc``),
  ``nearest_k`` = 5 (their README; dgm-eval's ``--nearest_k`` default), strict ``<``, real balls only:
  density = 1/(k·N) Σ_g Σ_x 1[d(x, g) < r_k(x)], coverage = mean over real x of 1[min_g d(x, g) < r_k(x)].

Differences, on purpose: distances are computed in float64 (``sqrt(max(|a|² + |b|² − 2 a·b, 0))``, the
matrix-product form torch.cdist and sklearn also use) in row blocks of bounded memory instead of a full N×M
matrix (torch-fidelity keeps the full matrix unless ``save_cpu_ram``; prdc always does); torch-fidelity works
in the features' dtype (float32 from its extractor), sklearn upcasts float32 to float64 and returns float32.
On float64 inputs the values equal torch-fidelity's and prdc's own functions (the tests call both); on float32
inputs a pair lying on a ball's boundary up to float32 round-off may count differently. dgm-eval subsamples
both sides to 10,000 with an unseeded draw; here every image is used. Each side needs k + 1 images (prdc's
``argpartition(kth=k + 1)`` needs k + 2; with k + 1 the radius is the farthest other image, as torch-fidelity
computes it). torch-fidelity's f-score is not reported.

Bootstrap (prompt resampling, generated side): precision and density are means of a per-image value
(exact mean replicates); coverage and recall are recomputed exactly on each replicate's multiset of generated
images from per-row neighbour lists kept from the one distance pass (a row whose answer lies beyond the kept
list is recomputed from the features) — the same value the function gives on the resampled rows, duplicates
included (a drawn image's copies sit at distance 0 from each other and shrink its k-NN radius, as they would
in the reference code run on the resampled set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import MetricContext
from ..errors import ConfigError
from ..registry import MinComparable, Need, extra_count, n_count, register_metric
from ..types import MetricValue

POOL3 = "inception.pool3"
#: torch-fidelity 0.4 ``defaults.py``: ``prc_neighborhood``.
PRC_NEIGHBORHOOD = 3
#: prdc's README (``nearest_k = 5``) and dgm-eval's ``--nearest_k`` default.
PRDC_NEAREST_K = 5
_BLOCK = 1 << 22  # distance-matrix elements per block (32 MiB of float64)
_KEEP = 32  # neighbours kept per row for the exact coverage / recall replicates


def _as_2d(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (n_samples, dim), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: features contain NaN or inf; re-extract them")
    return a


def _check(gen: np.ndarray, ref: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    g, r = _as_2d(gen, f"{metric} (generated)"), _as_2d(ref, f"{metric} (reference)")
    if g.shape[1] != r.shape[1]:
        raise ValueError(f"{metric}: generated features have {g.shape[1]} columns, reference {r.shape[1]}")
    if k < 1:
        raise ValueError(f"{metric}: k must be ≥ 1, got {k}")
    if min(len(g), len(r)) < k + 1:
        raise ValueError(
            f"{metric}: needs at least k + 1 = {k + 1} generated and reference images (k-th nearest neighbour "
            f"of each within its own set), got {len(g)} generated / {len(r)} reference"
        )
    return g, r


def distance_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Euclidean distances of row blocks of ``a`` to all of ``b``: ``(start, D[start:start+m])``, float64."""
    bb = np.einsum("ij,ij->i", b, b)
    step = max(1, _BLOCK // max(1, len(b)))
    for lo in range(0, len(a), step):
        blk = a[lo : lo + step]
        d2 = np.einsum("ij,ij->i", blk, blk)[:, None] + bb[None, :] - 2.0 * (blk @ b.T)
        yield lo, np.sqrt(np.maximum(d2, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """``r_k``: the (k+1)-th smallest distance of each row to all rows of ``x``, itself included."""
    out = np.empty(len(x))
    for lo, d in distance_blocks(x, x):
        out[lo : lo + len(d)] = np.partition(d, k, axis=1)[:, k]
    return out


def _smallest(d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``n`` smallest values of ``d`` ascending and their columns."""
    idx = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(d), 1))
    val = np.take_along_axis(d, idx, axis=1)
    order = np.argsort(val, axis=1, kind="stable")
    return np.take_along_axis(val, order, axis=1), np.take_along_axis(idx, order, axis=1)


def precision(gen: np.ndarray, ref: np.ndarray, k: int = PRC_NEIGHBORHOOD) -> tuple[float, np.ndarray]:
    """torch-fidelity's precision -> (value, per generated image 1.0 if inside some reference ball else 0.0)."""
    g, r = _check(gen, ref, k, "precision")
    radii = knn_radii(r, k)
    inside = np.zeros(len(g), dtype=bool)
    for lo, d in distance_blocks(r, g):
        inside |= (d <= radii[lo : lo + len(d), None]).any(axis=0)
    return float(inside.mean()), inside.astype(np.float64)


def density(gen: np.ndarray, ref: np.ndarray, k: int = PRDC_NEAREST_K) -> tuple[float, np.ndarray]:
    """prdc's density -> (value, per generated image: how many reference balls contain it)."""
    g, r = _check(gen, ref, k, "density")
    radii = knn_radii(r, k)
    count = np.zeros(len(g))
    for lo, d in distance_blocks(r, g):
        count += (d < radii[lo : lo + len(d), None]).sum(axis=0)
    return float(count.mean() / k), count


@dataclass
class CoverageReplicator:
    """Coverage of a multiset of generated rows: each reference ``x`` keeps its nearest generated rows inside
    its ball (``near``, padded with −1); a reference whose ball holds more than were kept and none of the kept
    is drawn is checked against the drawn rows' features."""

    gen: np.ndarray
    ref: np.ndarray
    radii: np.ndarray
    near: np.ndarray  # (M, keep) generated rows inside each ball, nearest first, −1 = none
    n_inside: np.ndarray  # (M,) generated rows inside each ball

    k: int

    def __call__(self, rows: np.ndarray) -> float:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) < self.k + 1:
            return math.nan  # the metric refuses fewer than k + 1 generated images
        drawn = np.zeros(len(self.gen) + 1, dtype=bool)  # index −1 = the padding, never drawn
        drawn[rows] = True
        covered = drawn[self.near].any(axis=1)
        rest = np.flatnonzero(~covered & (self.n_inside > self.near.shape[1]))
        if len(rest):
            u = np.flatnonzero(drawn[:-1])
            for lo, d in distance_blocks(self.ref[rest], self.gen[u]):
                covered[rest[lo : lo + len(d)]] = (d < self.radii[rest[lo : lo + len(d)], None]).any(axis=1)
        return float(covered.mean())


def coverage(gen: np.ndarray, ref: np.ndarray, k: int = PRDC_NEAREST_K) -> tuple[float, CoverageReplicator]:
    """prdc's coverage -> (value, its replicator over multisets of generated rows)."""
    g, r = _check(gen, ref, k, "coverage")
    radii = knn_radii(r, k)
    keep = min(_KEEP, len(g))
    near = np.full((len(r), keep), -1, dtype=np.int64)
    n_inside = np.zeros(len(r), dtype=np.int64)
    for lo, d in distance_blocks(r, g):
        rad = radii[lo : lo + len(d), None]
        inside = d < rad
        n_inside[lo : lo + len(d)] = inside.sum(axis=1)
        val, idx = _smallest(d, keep)
        near[lo : lo + len(d)] = np.where(val < rad, idx, -1)
    value = float((n_inside > 0).mean())
    return value, CoverageReplicator(g, r, radii, near, n_inside, k)


@dataclass
class RecallReplicator:
    """Recall of a multiset of generated rows. A drawn row's radius is the (k+1)-th smallest of its copies'
    self-distances and its kept neighbours' distances, each neighbour counted as often as drawn (all rows when
    too few kept ones are drawn); the references inside its ball come from its kept nearest references, or
    from all references when the radius reaches past them."""

    gen: np.ndarray
    ref: np.ndarray
    k: int
    self_d: np.ndarray  # (N,) computed self-distances (0 up to round-off)
    nn_d: np.ndarray  # (N, L) distances to the L nearest other generated rows, ascending
    nn_i: np.ndarray  # (N, L) their rows
    ref_d: np.ndarray  # (N, T) distances to the T nearest references, ascending
    ref_i: np.ndarray  # (N, T) their rows

    def _radius(self, i: int, c: np.ndarray) -> float:
        u = np.flatnonzero(c)
        d = next(distance_blocks(self.gen[i : i + 1], self.gen[u]))[1][0]
        d[u == i] = self.self_d[i]
        return float(np.sort(np.repeat(d, c[u]))[self.k])

    def __call__(self, rows: np.ndarray) -> float:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) < self.k + 1:
            return math.nan  # the metric refuses fewer than k + 1 generated images
        c = np.bincount(rows, minlength=len(self.gen))
        u = np.flatnonzero(c)
        cum = c[u, None] + np.cumsum(c[self.nn_i[u]], axis=1)
        pos = np.argmax(cum >= self.k + 1, axis=1)
        radius = np.where(c[u] >= self.k + 1, self.self_d[u], self.nn_d[u, pos])
        for j in np.flatnonzero((cum[:, -1] < self.k + 1) & (c[u] < self.k + 1)):
            radius[j] = self._radius(int(u[j]), c)
        hit = np.zeros(len(self.ref), dtype=bool)
        hit[self.ref_i[u][self.ref_d[u] <= radius[:, None]]] = True
        partial = self.ref_d.shape[1] < len(self.ref)  # kept all references: nothing lies beyond
        beyond = np.flatnonzero(radius >= self.ref_d[u, -1]) if partial else np.zeros(0, dtype=np.int64)
        for j in beyond:
            d = next(distance_blocks(self.gen[u[j] : u[j] + 1], self.ref))[1][0]
            hit |= d <= radius[j]
        return float(hit.mean())


def recall(gen: np.ndarray, ref: np.ndarray, k: int = PRC_NEIGHBORHOOD) -> tuple[float, RecallReplicator]:
    """torch-fidelity's recall -> (value, its replicator over multisets of generated rows)."""
    g, r = _check(gen, ref, k, "recall")
    n = len(g)
    keep_nn, keep_ref = min(_KEEP + k, n - 1), min(_KEEP, len(r))
    self_d, radii = np.empty(n), np.empty(n)
    nn_d, nn_i = np.empty((n, keep_nn)), np.empty((n, keep_nn), dtype=np.int64)
    for lo, d in distance_blocks(g, g):
        rows = np.arange(lo, lo + len(d))
        radii[rows] = np.partition(d, k, axis=1)[:, k]
        self_d[rows] = d[rows - lo, rows]
        d[rows - lo, rows] = np.inf  # neighbour lists leave the row itself out
        nn_d[rows], nn_i[rows] = _smallest(d, keep_nn)
    hit = np.zeros(len(r), dtype=bool)
    ref_d, ref_i = np.empty((n, keep_ref)), np.empty((n, keep_ref), dtype=np.int64)
    for lo, d in distance_blocks(g, r):
        hit |= (d <= radii[lo : lo + len(d), None]).any(axis=0)
        ref_d[lo : lo + len(d)], ref_i[lo : lo + len(d)] = _smallest(d, keep_ref)
    return float(hit.mean()), RecallReplicator(g, r, k, self_d, nn_d, nn_i, ref_d, ref_i)


@dataclass(frozen=True)
class PRParams:
    """torch-fidelity's ``prc_neighborhood``; ``feature``: ``<backbone>.<feature>`` read on both sides."""

    neighborhood: int = PRC_NEIGHBORHOOD
    feature: str = POOL3


@dataclass(frozen=True)
class DCParams:
    """prdc's ``nearest_k``; ``feature``: ``<backbone>.<feature>`` read on both sides."""

    nearest_k: int = PRDC_NEAREST_K
    feature: str = POOL3


_K = {"precision": "neighborhood", "recall": "neighborhood", "density": "nearest_k", "coverage": "nearest_k"}
_REFERENCE = {
    "precision": "torch-fidelity 0.4 metric_prc.py (prc_features_to_metric, input1 = generated)",
    "recall": "torch-fidelity 0.4 metric_prc.py (prc_features_to_metric, input1 = generated)",
    "density": "clovaai/generative-evaluation-prdc prdc/prdc.py (compute_prdc)",
    "coverage": "clovaai/generative-evaluation-prdc prdc/prdc.py (compute_prdc)",
}


def feature_key(params: dict[str, Any], metric: str) -> str:
    """``metrics.params.<metric>.feature``, checked: a registered backbone and a feature it provides."""
    from ..backbones.registry import all_backbones

    key = str(params["feature"])
    backbone, _, feat = key.partition(".")
    entry = all_backbones().get(backbone)
    provides = tuple(getattr(entry.cls, "provides", ())) if entry is not None else ()
    if feat not in provides or feat in ("detections", "size"):
        valid = sorted(
            f"{n}.{f}"
            for n, e in all_backbones().items()
            for f in getattr(e.cls, "provides", ())
            if f not in ("detections", "size")
        )
        raise ConfigError(
            f"metrics.params.{metric}.feature={key!r} is not an image feature of a registered backbone; "
            f"valid: {', '.join(valid)} (default {POOL3})"
        )
    return key


def _needs(metric: str) -> Callable[[dict[str, Any]], tuple[Need, ...]]:
    def needs_for(params: dict[str, Any]) -> tuple[Need, ...]:
        backbone, _, feat = feature_key(params, metric).partition(".")
        return (Need(backbone, feat, "gen"), Need(backbone, feat, "ref"))

    return needs_for


def _requires(metric: str) -> Callable[..., str | None]:
    def requires(records: list, evalset: Any, params: dict[str, Any] | None = None) -> str | None:
        k = int((params or {})[_K[metric]])  # resolved by MetricSpec.requires
        n_ref = sum(1 for r in records if r.reference)
        if n_ref == 0:
            return f"records carry no 'reference' images ({metric} compares image features; reference_stats cannot serve it)"
        if n_ref < k + 1:
            return (
                f"{n_ref} reference images, fewer than k + 1 = {k + 1} ({metric} needs each image's k-th nearest "
                f"neighbour); add reference images or set metrics.params.{metric}.{_K[metric]}<={n_ref - 1}"
            )
        return None

    return requires


def _inputs(ctx: MetricContext, params: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray, int, str]:
    key, kname = feature_key(params, metric), _K[metric]
    k = int(params[kname])
    gen, ref = ctx.gen(key), ctx.ref(key)
    n = min(len(gen), len(ref))
    if k < 1 or n < k + 1:
        fix = f"metrics.params.{metric}.{kname}=<at most {n - 1}>, or " if n >= 2 and k >= 1 else ""
        raise ConfigError(
            f"{metric}: {metric}.{kname}={k} needs at least k + 1 = {k + 1} generated and reference images (each "
            f"image's k-th nearest neighbour within its own set), got {len(gen)} generated / {len(ref)} reference "
            f"on subset {ctx.subset!r}.\n  fix: {fix}more images on both sides, or leave {metric} out (metrics.ids=[...])"
        )
    return gen, ref, k, key


def _extras(metric: str, key: str, k: int, n_ref: int) -> dict[str, Any]:
    op = "<=" if _K[metric] == "neighborhood" else "<"
    return {"feature": key, _K[metric]: k, "n_reference": n_ref, "ball": f"d {op} r_k", "reference": _REFERENCE[metric]}


#: Images per side below which precision / recall / density / coverage are not comparable to published numbers:
#: Naeem et al. 2020 (and clovaai/generative-evaluation-prdc's README example) use 10,000 real and 10,000 fake
#: samples; k-NN radii shrink as N grows, so the values move with N (Kynkäänniemi et al. 2019 use 50,000).
PRDC_MIN_SAMPLES = 10000
_PRDC_SOURCE = "Naeem et al. 2020: 10,000 real and 10,000 generated"
_COMMON: dict[str, Any] = dict(
    version="1",
    subset="realism",
    unit="score",
    higher_is_better=True,
    min_comparable=(
        MinComparable("generated images", PRDC_MIN_SAMPLES, n_count, _PRDC_SOURCE),
        MinComparable("reference images", PRDC_MIN_SAMPLES, extra_count("n_reference"), _PRDC_SOURCE),
    ),
)


@register_metric(
    "precision",
    display="Precision",
    **_COMMON,
    params=PRParams,
    citation="Kynkäänniemi et al. 2019, Improved Precision and Recall Metric for Assessing Generative Models "
    "(k = 3, as toshas/torch-fidelity torch_fidelity/metric_prc.py)",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
)
def compute_precision(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fraction of generated images inside some reference image's k-NN ball (d <= r_k), k = 3, on pool3 (or
    ``feature``) — equals torch-fidelity's prc precision (generated = input1). Params: neighborhood, feature."""
    gen, ref, k, key = _inputs(ctx, params, "precision")
    value, inside = precision(gen, ref, k)
    return MetricValue(
        value=value,
        n=len(gen),
        per_sample=inside,
        extras=_extras("precision", key, k, len(ref)),
        resample=ctx.mean_resampler(inside),
    )


@register_metric(
    "recall",
    display="Recall",
    **_COMMON,
    params=PRParams,
    citation="Kynkäänniemi et al. 2019, Improved Precision and Recall Metric for Assessing Generative Models "
    "(k = 3, as toshas/torch-fidelity torch_fidelity/metric_prc.py)",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
)
def compute_recall(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fraction of reference images inside some generated image's k-NN ball (d <= r_k), k = 3, on pool3 (or
    ``feature``) — equals torch-fidelity's prc recall (generated = input1). Params: neighborhood, feature."""
    gen, ref, k, key = _inputs(ctx, params, "recall")
    value, rep = recall(gen, ref, k)
    return MetricValue(
        value=value, n=len(gen), extras=_extras("recall", key, k, len(ref)), resample=ctx.rows_resampler(rep, "is")
    )


@register_metric(
    "density",
    display="Density",
    **_COMMON,
    params=DCParams,
    citation="Naeem et al. 2020, Reliable Fidelity and Diversity Metrics for Generative Models "
    "(k = 5, as clovaai/generative-evaluation-prdc prdc/prdc.py)",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
)
def compute_density(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Mean number of reference k-NN balls (d < r_k) holding a generated image, divided by k; k = 5, on pool3
    (or ``feature``) — equals prdc's compute_prdc density. Params: nearest_k, feature."""
    gen, ref, k, key = _inputs(ctx, params, "density")
    value, count = density(gen, ref, k)
    return MetricValue(
        value=value,
        n=len(gen),
        per_sample=count / k,
        extras=_extras("density", key, k, len(ref)),
        resample=ctx.mean_resampler(count, scale=1.0 / k),
    )


@register_metric(
    "coverage",
    display="Coverage",
    **_COMMON,
    params=DCParams,
    citation="Naeem et al. 2020, Reliable Fidelity and Diversity Metrics for Generative Models "
    "(k = 5, as clovaai/generative-evaluation-prdc prdc/prdc.py)",
    needs=(Need("inception", "pool3", "gen"), Need("inception", "pool3", "ref")),
)
def compute_coverage(ctx: MetricContext, params: dict[str, Any]) -> MetricValue:
    """Fraction of reference images whose k-NN ball (d < r_k) holds some generated image; k = 5, on pool3 (or
    ``feature``) — equals prdc's compute_prdc coverage. Params: nearest_k, feature."""
    gen, ref, k, key = _inputs(ctx, params, "coverage")
    value, rep = coverage(gen, ref, k)
    return MetricValue(
        value=value, n=len(gen), extras=_extras("coverage", key, k, len(ref)), resample=ctx.rows_resampler(rep, "is")
    )


for _fn, _id in (
    (compute_precision, "precision"),
    (compute_recall, "recall"),
    (compute_density, "density"),
    (compute_coverage, "coverage"),
):
    _fn.needs_for = _needs(_id)  # type: ignore[attr-defined]
    _fn.requires = _requires(_id)  # type: ignore[attr-defined]
