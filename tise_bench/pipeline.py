"""Score one model's images on one eval set: :func:`extract` (find the samples, one FeatureBank pass) →
:func:`finish` (:func:`score`, pure metrics, then the result with its comparability fields and bootstrap
replicates, ready to write); :func:`evaluate_model` is the two. What runs is decided before, by
:mod:`tise_bench.planning`. :class:`tise_bench.evaluator.Evaluator` builds its :class:`Extracted` from features
accumulated in memory and calls the same :func:`finish`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .backbones.base import ImageBackbone, forward_counts
from .bootstrap import BootstrapSpec, ReplicateMemo, replicate_fingerprints, replicate_metrics
from .comparability import record_comparability
from .context import MetricContext, Sample
from .data.samples import SampleReport, find_images_layout
from .distributed import Dist, extract_shard
from .errors import ConfigError
from .evalset import EvalSet, feature_extractor_id, load_reference_stats
from .features.bank import CropRequest, FeatureBank, ImageFeatures
from .features.crops import CropSpec
from .features.memory import is_memory_key
from .metrics.inception import fid_statistics
from .planning import ON_UNSUPPORTED, Plan, plan, resolve_metrics
from .registry import MetricSpec, reference_images_or_stats
from .results import EvalResult
from .types import MetricValue

log = logging.getLogger(__name__)
__all__ = [
    "ON_UNSUPPORTED",
    "Extracted",
    "Plan",
    "Scored",
    "embed_texts",
    "evaluate_model",
    "extract",
    "finish",
    "plan",
    "reference_paths",
    "score",
]


def _attach_crops(
    ctx: MetricContext, features: dict[str, np.ndarray], gen_rows: list[int], ref_rows: list[int]
) -> None:
    """Crops of this subset's samples (owner remapped to sample index) and of its reference images."""
    owner = features["crops.owner"]
    keys = [k for k in features if k.startswith("crops.") and k != "crops.owner"]
    pos = {r: i for i, r in enumerate(gen_rows)}
    g = np.isin(owner, gen_rows)
    for k in keys:
        ctx.gen_features[k] = features[k][g]
    ctx.gen_features["crops.owner"] = np.asarray([pos[r] for r in owner[g]], dtype=np.int64)
    r = np.isin(owner, ref_rows)
    for k in keys:
        ctx.ref_features[k] = features[k][r]


@dataclass
class Extracted:
    """Everything the feature pass produced for one model: image features by row, text embeddings, the images
    found per subset and what was counted on the way."""

    feats: ImageFeatures
    row_of: dict[str, int]
    by_subset: dict[str, dict[str, list[tuple[int, str]]]]
    report: SampleReport
    gen_paths: list[str]
    ref_paths: list[str]
    gen_keys: dict[str, set[str]]
    ref_keys: dict[str, set[str]]
    crops: CropRequest | None
    text_emb: dict[str, np.ndarray]
    truncated: set[str]
    #: text embeddings of text backbones other than ``clip`` (``hps``): backbone -> (text -> embedding, truncated)
    other_text: dict[str, tuple[dict[str, np.ndarray], set[str]]] = dataclasses.field(default_factory=dict)


def split_needs(
    chosen: list[tuple[MetricSpec, str]], params: dict[str, dict[str, Any]]
) -> tuple[dict[str, set[str]], dict[str, set[str]], set[str], bool]:
    """-> (generated-image features per backbone, reference-image features, subsets needing text, crops?)."""
    gen: dict[str, set[str]] = {}
    ref: dict[str, set[str]] = {}
    text_subsets: set[str] = set()
    want_crops = False
    for spec, subset in chosen:
        for need in spec.needs_for(params.get(spec.id)):
            if need.backbone == "crops":
                want_crops = True
            elif need.role == "text":
                text_subsets.add(subset)
            else:
                (gen if need.role == "gen" else ref).setdefault(need.backbone, set()).add(need.feature)
    return gen, ref, text_subsets, want_crops


def extract(
    samples_dir: str | Path,
    evalset: EvalSet,
    chosen: list[tuple[MetricSpec, str]],
    params: dict[str, dict[str, Any]],
    bank: FeatureBank,
    backbones: dict[str, ImageBackbone],
    *,
    on_mismatch: str = "fail",
    on_bad_image: str = "fail",
    crop_spec: CropSpec | None = None,
    dist: Dist | None = None,
    layout: str = "flat",
    subset_dirs: dict[str, str] | None = None,
) -> Extracted | None:
    """Find the model's images and run the one feature pass every chosen metric reads (None on torchrun ranks
    other than 0, which only contribute their shard of the image features)."""
    used = sorted({s for _, s in chosen})
    by_subset, report = find_images_layout(
        samples_dir,
        {s: evalset.subsets[s] for s in used},
        layout=layout,
        subset_dirs=subset_dirs,
        policy=on_mismatch,
        beyond={s: evalset.beyond_limit.get(s, []) for s in used},  # data.limit: expected, not extras
    )
    gen_keys, ref_keys, text_subsets, want_crops = split_needs(chosen, params)
    ref_paths = reference_paths(chosen, params, evalset)
    missing_refs = [p for p in ref_paths if not Path(p).is_file()]
    if missing_refs:
        raise ConfigError(
            f"{len(missing_refs)} reference images listed in the manifest do not exist "
            f"(first: {missing_refs[0]}); fix the manifest's 'reference' paths"
        )
    gen_paths = list(dict.fromkeys(p for s in used for v in by_subset[s].values() for _, p in v))
    all_needs = {b: gen_keys.get(b, set()) | ref_keys.get(b, set()) for b in set(gen_keys) | set(ref_keys)}
    crops = crop_request(crop_spec, backbones) if want_crops else None
    all_paths = list(dict.fromkeys(gen_paths + ref_paths))
    if dist is not None and dist.enabled:
        extract_shard(bank, all_paths, all_needs, on_bad=on_bad_image, crops=crops, dist=dist)
        if not dist.is_main:
            return None
    feats = bank.images(all_paths, all_needs, on_bad=on_bad_image, crops=crops)
    text_emb, truncated, other_text = embed_texts(chosen, params, evalset, bank, backbones)
    return Extracted(
        feats=feats,
        row_of={p: i for i, p in enumerate(feats.paths)},
        by_subset=by_subset,
        report=report,
        gen_paths=gen_paths,
        ref_paths=ref_paths,
        gen_keys=gen_keys,
        ref_keys=ref_keys,
        crops=crops,
        text_emb=text_emb,
        truncated=truncated,
        other_text=other_text,
    )


_split_needs = split_needs  # the name scripts/bench_overhead.py imports


def reference_paths(
    chosen: list[tuple[MetricSpec, str]], params: dict[str, dict[str, Any]], evalset: EvalSet
) -> list[str]:
    """The reference images the chosen metrics read: records' ``reference`` in record order, each once."""
    ref_paths: list[str] = []
    for spec, subset in chosen:
        if any(n.role == "ref" for n in spec.needs_for(params.get(spec.id))):
            ref_paths += [r.reference for r in evalset.subsets[subset] if r.reference]
    return list(dict.fromkeys(ref_paths))


def crop_request(crop_spec: CropSpec | None, backbones: dict[str, ImageBackbone]) -> CropRequest:
    """The object crops O-IS / O-FID read: cut by ``crop_spec``, through Inception (and TISE's object classifier
    when it is built)."""
    return CropRequest(
        spec=crop_spec or CropSpec(),
        backbones={"inception": "", **({"object_classifier": "objcls_"} if "object_classifier" in backbones else {})},
    )


def embed_texts(
    chosen: list[tuple[MetricSpec, str]],
    params: dict[str, dict[str, Any]],
    evalset: EvalSet,
    bank: FeatureBank,
    backbones: dict[str, ImageBackbone],
) -> tuple[dict[str, np.ndarray], set[str], dict[str, tuple[dict[str, np.ndarray], set[str]]]]:
    """Every chosen metric's texts, embedded by the backbone(s) it reads them from (cached by the bank) ->
    (CLIP's embeddings, CLIP's truncated texts, the other text backbones' (embeddings, truncated))."""
    text_emb: dict[str, np.ndarray] = {}
    truncated: set[str] = set()
    other_text: dict[str, tuple[dict[str, np.ndarray], set[str]]] = {}
    by_backbone: dict[str, list[str]] = {}
    for spec, subset in chosen:
        text_nets = dict.fromkeys(n.backbone for n in spec.needs_for(params.get(spec.id)) if n.role == "text")
        if text_nets:
            texts = spec.texts(evalset.subsets[subset], params.get(spec.id) or {})
            for b in text_nets:
                by_backbone.setdefault(b, []).extend(texts)
    for b, texts in by_backbone.items():
        if b == "clip":
            text_emb, truncated = bank.texts(backbones["clip"], texts)
        else:
            other_text[b] = bank.texts(backbones[b], texts)
    return text_emb, truncated, other_text


def _ref_stats_fn(ex: Extracted, evalset: EvalSet, bank: FeatureBank) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Reference statistics of a feature: the eval set's stats file, or computed (and cached) from the reference
    images' rows — keyed by exactly what they are computed from: the rows' hashes in order, repeats included (a
    set of hashes would let an eval set that reuses a reference image read another set's statistics)."""
    feats, row_of = ex.feats, ex.row_of
    memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def ref_stats(key: str, subset_refs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if evalset.reference_stats:
            dim = feats.features[key].shape[1] if key in feats.features and feats.features[key].ndim == 2 else 2048
            return load_reference_stats(
                evalset.reference_stats,
                dim,
                extractor=feature_extractor_id(bank.backbones[key.split(".")[0]]),
                declared=evalset.reference_stats_extractor,
            )
        rows = [row_of[p] for p in subset_refs if p in row_of]
        if len(rows) < 2:
            raise ConfigError(
                f"FID needs reference images (records' 'reference') or data.reference_stats=<npz>; "
                f"eval set {evalset.name!r} has {len(rows)} usable reference images"
            )
        shas = [feats.shas[i] for i in rows]
        ck = hashlib.sha256(
            (key + "|" + bank.backbones[key.split(".")[0]].namespace + "|rows-v2|" + ",".join(shas)).encode()
        ).hexdigest()
        if ck not in memo:

            def compute() -> tuple[np.ndarray, np.ndarray]:
                return fid_statistics(feats.features[key][rows])

            # statistics of in-memory reference images are not kept on disk, as their features are not
            memo[ck] = compute() if any(map(is_memory_key, subset_refs)) else bank.cached_stats(ck, compute)
        return memo[ck]

    return ref_stats


@dataclass
class Scored:
    metrics: dict[str, MetricValue]
    per_sample: dict[str, dict[tuple[str, str], float | str]]
    samples_by_subset: dict[str, list[Sample]]
    #: per subset whose reference images some metric reads: records without a ``reference`` (left out of it)
    no_reference: dict[str, int] = dataclasses.field(default_factory=dict)


def reads_reference_images(spec: MetricSpec, params: dict[str, Any] | None, evalset: EvalSet) -> bool:
    """Whether ``spec`` reads reference images' features (not served by the eval set's ``reference_stats``)."""
    if not any(n.role == "ref" for n in spec.needs_for(params)):
        return False
    return not (evalset.reference_stats and getattr(spec.fn, "requires", None) is reference_images_or_stats)


def _count_references(mv: MetricValue, n_reference: int, no_reference: int) -> MetricValue:
    """``mv`` with the reference set's size (``extras['n_reference']``, unless the metric recorded it) and the
    records left out of it for want of a ``reference`` (``skipped['no_reference']``). The value is unchanged."""
    extras = mv.extras if "n_reference" in mv.extras else {**mv.extras, "n_reference": n_reference}
    keep = not no_reference or "no_reference" in mv.skipped  # CLIP-I2I counts its own (images without one)
    skipped = mv.skipped if keep else {**mv.skipped, "no_reference": no_reference}
    return dataclasses.replace(mv, extras=extras, skipped=skipped)


def score(
    chosen: list[tuple[MetricSpec, str]],
    params: dict[str, dict[str, Any]],
    evalset: EvalSet,
    ex: Extracted,
    bank: FeatureBank,
    backbones: dict[str, ImageBackbone],
) -> Scored:
    """Every chosen metric on its subset's samples: pure arithmetic over the extracted features."""
    feats, row_of = ex.feats, ex.row_of
    stats_fn = _ref_stats_fn(ex, evalset, bank)
    out = Scored({}, {}, {})
    for spec, subset in chosen:
        recs = evalset.subsets[subset]
        samples = [
            Sample(i, k, p, feats.shas[row_of[p]])
            for i, r in enumerate(recs)
            for k, p in ex.by_subset[subset].get(r.id, [])
            if p in row_of
        ]
        out.samples_by_subset[subset] = samples
        srows = [row_of[s.path] for s in samples]
        ref_records = [i for i, r in enumerate(recs) if r.reference and r.reference in row_of]
        sub_refs = [str(recs[i].reference) for i in ref_records]
        ctx = MetricContext(
            subset=subset,
            records=recs,
            samples=samples,
            gen_features={f"{b}.{f}": feats.features[f"{b}.{f}"][srows] for b, fs in ex.gen_keys.items() for f in fs},
            ref_features={
                f"{b}.{f}": feats.features[f"{b}.{f}"][[row_of[p] for p in sub_refs]]
                for b, fs in ex.ref_keys.items()
                for f in fs
            },
            ref_records=ref_records,
            text_features=ex.text_emb,
            text_truncated=ex.truncated,
            other_text=ex.other_text,
            logit_scale=getattr(backbones.get("clip"), "logit_scale", 100.0),
            ref_stats_fn=functools.partial(stats_fn, subset_refs=sub_refs),
            extra={
                "class_names": getattr(backbones.get("detector"), "names", None),
                # what the detections came from, for protocol labels ("T2I-CompBench rules, <detector>")
                "detector": getattr(backbones.get("detector"), "detector", None)
                or getattr(backbones.get("detector"), "weights_name", None),
                # where FID / O-FID / FD cache the reference side's square root (features/refcache.py)
                "cache_dir": bank.cache_dir,
            },
            sample_rank=np.asarray(srows, dtype=np.int64),
        )
        if ex.crops is not None and any(n.backbone == "crops" for n in spec.needs_for(params.get(spec.id))):
            _attach_crops(ctx, feats.features, srows, [row_of[p] for p in sub_refs])
        if not samples:
            out.metrics[spec.id] = MetricValue(value=float("nan"), n=0, extras={"reason": "no images found"})
            continue
        mv = spec.compute(ctx, params.get(spec.id))
        if reads_reference_images(spec, params.get(spec.id), evalset):
            lacking = sum(1 for r in recs if not r.reference)
            if lacking and subset not in out.no_reference:
                log.warning(
                    "%d of %d records of subset %r have no 'reference': the reference set has %d images, not %d "
                    "(counted in skipped.no_reference; give every record a 'reference' or data.reference_stats)",
                    lacking,
                    len(recs),
                    subset,
                    len(sub_refs),
                    len(recs),
                )
            out.no_reference[subset] = lacking
            mv = _count_references(mv, len(sub_refs), lacking)
        out.metrics[spec.id] = mv
        if mv.per_sample is not None and len(mv.per_sample) == len(samples):
            out.per_sample[spec.id] = {(subset, s.path): float(v) for s, v in zip(samples, mv.per_sample)}
        for col, notes in mv.sample_notes.items():  # text columns (GenEval's failure reasons)
            if len(notes) == len(samples):
                out.per_sample[f"{spec.id}_{col}"] = {(subset, s.path): str(v) for s, v in zip(samples, notes)}
    return out


def evaluate_model(
    *,
    model_name: str,
    samples_dir: str | Path,
    evalset: EvalSet,
    metric_ids: list[str],
    params: dict[str, dict[str, Any]],
    bank: FeatureBank,
    backbones: dict[str, ImageBackbone],
    on_mismatch: str = "fail",
    on_bad_image: str = "fail",
    config: dict | None = None,
    crop_spec: CropSpec | None = None,
    dist: Dist | None = None,
    layout: str = "flat",
    subset_dirs: dict[str, str] | None = None,
) -> EvalResult | None:
    """One model's metrics: resolve → :func:`extract` (one feature pass) → :func:`finish`. Under torchrun
    (``dist.enabled``) the ranks share the image feature extraction and only rank 0 goes on; the others
    return None."""
    chosen, not_applicable = resolve_metrics(metric_ids, evalset, params)
    params = {spec.id: spec.resolve_params(params.get(spec.id)) for spec, _ in chosen}  # defaults filled in
    boot = BootstrapSpec.from_config((config or {}).get("bootstrap"))  # checked before the feature pass
    fwd0 = forward_counts(backbones)
    ex = extract(
        samples_dir,
        evalset,
        chosen,
        params,
        bank,
        backbones,
        on_mismatch=on_mismatch,
        on_bad_image=on_bad_image,
        crop_spec=crop_spec,
        dist=dist,
        layout=layout,
        subset_dirs=subset_dirs,
    )
    if ex is None:
        return None
    result = finish(
        model_name=model_name,
        evalset=evalset,
        chosen=chosen,
        not_applicable=not_applicable,
        params=params,
        ex=ex,
        bank=bank,
        backbones=backbones,
        config=config,
        boot=boot,
        memo_replicates=True,  # IS / FID-family replicates of an unchanged earlier run read from the cache
    )
    # Work this run did (0 everywhere on a fully cached re-run; a resumed run shows only what was left).
    fwd1 = forward_counts(backbones)
    result.provenance["backbone_forwards"] = {k: fwd1[k] - fwd0[k] for k in fwd1}
    return result


def finish(
    *,
    model_name: str,
    evalset: EvalSet,
    chosen: list[tuple[MetricSpec, str]],
    not_applicable: dict[str, str],
    params: dict[str, dict[str, Any]],
    ex: Extracted,
    bank: FeatureBank,
    backbones: dict[str, ImageBackbone],
    config: dict | None = None,
    boot: BootstrapSpec | None = None,
    memo_replicates: bool = False,
) -> EvalResult:
    """The second half of :func:`evaluate_model`, on extracted features: :func:`score` → the result (counts,
    comparability fields, bootstrap replicates per ``config['bootstrap']``, detections), ready to write.
    ``params``: resolved (:meth:`MetricSpec.resolve_params`) for each chosen metric; ``boot``: ``config['bootstrap']``
    parsed (None: parsed here)."""
    boot = boot if boot is not None else BootstrapSpec.from_config((config or {}).get("bootstrap"))
    scored = score(chosen, params, evalset, ex, bank, backbones)
    bad = ex.feats.bad
    counts = {
        **ex.report.counts(),
        "bad_images": len(bad),
        "images": len(ex.gen_paths) - len([p for p in ex.gen_paths if p in bad]),
        "reference_images": len(ex.ref_paths),
        "no_reference": sum(scored.no_reference.values()),
    }
    result = EvalResult.build(
        model=model_name,
        data=evalset.name,
        specs={s.id: (s, sub) for s, sub in chosen},
        metrics=scored.metrics,
        samples_by_subset=scored.samples_by_subset,
        evalset=evalset,
        per_sample=scored.per_sample,
        backbones=backbones,
        counts=counts,
        not_applicable=not_applicable,
        report=ex.report,
        bad=bad,
        n_truncated=len(ex.truncated),
        config=config or {},
    )
    record_comparability(result, chosen, params, scored.metrics, backbones, evalset, ex.crops, ex.feats.shas, ex.row_of)
    subsets = {spec.id: subset for spec, subset in chosen}
    result.replicates, result.provenance["bootstrap"] = replicate_metrics(
        scored.metrics,
        subsets,
        {s: evalset.subsets[s] for s in set(subsets.values())},
        boot,
        memo=ReplicateMemo(
            bank.cache_dir, replicate_fingerprints(scored.metrics, subsets, scored.samples_by_subset, result.meta)
        )
        if memo_replicates
        else None,
    )
    # The resamplers hold the features they recompute from (FID: every generated pool3 row): drop them now that
    # the replicates are drawn, so a sweep of many models does not keep every model's features alive.
    result.metrics = {k: dataclasses.replace(v, resample=None) for k, v in result.metrics.items()}
    result.attach_detections(ex.feats, backbones.get("detector"))
    return result
