"""Score one model's images on one eval set: find samples, one FeatureBank pass, pure metrics."""
from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backbones.base import ImageBackbone, file_sha256, forward_counts
from .comparability import comparability, records_hash
from .context import MetricContext, Sample
from .data.samples import find_images_layout
from .distributed import Dist, extract_shard
from .errors import ConfigError
from .evalset import EvalSet, feature_extractor_id, load_reference_stats
from .features.bank import CropRequest, FeatureBank
from .features.crops import CropSpec
from .metrics.inception import fid_statistics
from .registry import MetricSpec, Need, get_metric, reference_images_or_stats
from .results import EvalResult
from .types import MetricValue

log = logging.getLogger(__name__)


def resolve_metrics(ids: list[str], evalset: EvalSet, params: dict[str, dict[str, Any]]
                    ) -> tuple[list[tuple[MetricSpec, str]], dict[str, str]]:
    """-> ([(spec, subset)], {id: reason} for metrics this eval set cannot run)."""
    chosen, skipped = [], {}
    for mid in ids:
        spec = get_metric(mid)
        subset = (params.get(mid) or {}).get("subset", spec.subset)
        if subset not in evalset.subsets:
            skipped[mid] = f"eval set {evalset.name!r} has no {subset!r} subset"
            continue
        chosen.append((spec, subset))
    for mid in params:
        if mid not in ids:
            get_metric(mid)  # a typo in metrics.params.<id> gets a did-you-mean, not silence
    return chosen, skipped


def check_requirements(chosen: list[tuple[MetricSpec, str]], params: dict[str, dict[str, Any]],
                       backbones_cfg: dict[str, Any], evalset: EvalSet) -> None:
    """Protocol requirements that can be checked before any backbone is built or image read.

    IS* on CUB (``metrics.params.is_star.network=bird_classifier``, set by ``data=cub``) needs TISE's bird
    classifier: with real backbones and no weights file the run stops here instead of silently using the
    ImageNet Inception with COCO's temperature."""
    from .backbones import use_bird_classifier

    for spec, _ in chosen:
        nets = {n.backbone for n in spec.needs_for(params.get(spec.id))}
        if "bird_classifier" in nets and not backbones_cfg.get("random") and not use_bird_classifier(backbones_cfg):
            raise ConfigError(
                f"{spec.id} on eval set {evalset.name!r} follows TISE's CUB protocol: IS* with TISE's bird-fine-tuned "
                f"Inception (50 classes + background, T = 0.5980541706085205), which no library ships.\n"
                f"  fix: backbones.bird_classifier.weights=<file> (convert TISE's TF-slim checkpoint with "
                f"`python -m tise_bench.backbones.bird_classifier`), or leave {spec.id} out (metrics.ids=[...]), or "
                f"metrics.params.{spec.id}.network=inception to compute IS* with inception-v3-compat "
                f"(recorded as a divergence from TISE's CUB protocol).")


#: What to do with a requested metric the eval set cannot support (config key ``on_unsupported``).
ON_UNSUPPORTED = ("fail", "skip")


@dataclass(frozen=True)
class Plan:
    """What a run computes, decided before any backbone is built or image read (:func:`plan`)."""

    chosen: list[tuple[MetricSpec, str]]  # (metric, subset) pairs that run
    not_applicable: dict[str, str]  # metric id -> why it is left out (written to metrics.json)
    needs: tuple[Need, ...]  # union of the chosen metrics' feature needs (one FeatureBank pass serves them all)

    @property
    def ids(self) -> list[str]:
        return [spec.id for spec, _ in self.chosen]

    @property
    def backbones(self) -> set[str]:
        """Networks to build (``crops`` = the detector → crops → crop-backbone stage)."""
        return {n.backbone for n in self.needs}


def plan(ids: list[str], evalset: EvalSet, params: dict[str, dict[str, Any]], backbones_cfg: dict[str, Any], *,
         on_unsupported: str = "fail", fix: str = "") -> Plan:
    """Resolve ``ids``, check that ``evalset`` supports each metric, merge their feature needs — before any work.

    * A metric whose subset the eval set does not define is left out (an eval set scopes its protocols: CUB has
      no SOA subset), with the reason.
    * A metric whose subset lacks what the metric requires (``MetricSpec.requires``: record fields, reference
      images, reference statistics) stops the plan with one :class:`ConfigError` naming every such metric, its
      subset and what is missing, followed by ``fix`` (``on_unsupported="fail"``), or is left out with that
      reason (``"skip"``).
    * Protocol requirements of the metrics that run (:func:`check_requirements`) are checked last.
    """
    if on_unsupported not in ON_UNSUPPORTED:
        raise ConfigError(f"on_unsupported={on_unsupported!r}: valid values are {', '.join(ON_UNSUPPORTED)} "
                          "(fail: stop before any work; skip: compute the rest, list the others as not_applicable)")
    resolved, absent = resolve_metrics(ids, evalset, params)
    chosen: list[tuple[MetricSpec, str]] = []
    unsupported: dict[str, str] = {}
    for spec, subset in resolved:
        why = spec.requires(evalset.subsets[subset], evalset, params.get(spec.id))
        if why is None:
            chosen.append((spec, subset))
        else:
            unsupported[spec.id] = f"{why} (subset {subset!r})"
    if unsupported and on_unsupported == "fail":
        lines = "\n".join(f"  {mid}: {why}" for mid, why in unsupported.items())
        raise ConfigError(f"eval set {evalset.name!r} cannot support {len(unsupported)} requested metric(s):\n{lines}"
                          + (f"\n  fix: {fix}" if fix else ""))
    check_requirements(chosen, params, backbones_cfg, evalset)
    reasons = {**absent, **unsupported}
    needs = tuple(dict.fromkeys(n for spec, _ in chosen for n in spec.needs_for(params.get(spec.id))))
    return Plan(chosen=chosen, not_applicable={m: reasons[m] for m in ids if m in reasons}, needs=needs)


def _attach_crops(ctx: MetricContext, features: dict[str, np.ndarray], gen_rows: list[int],
                  ref_rows: list[int]) -> None:
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


def evaluate_model(*, model_name: str, samples_dir: str | Path, evalset: EvalSet, metric_ids: list[str],
                   params: dict[str, dict[str, Any]], bank: FeatureBank, backbones: dict[str, ImageBackbone],
                   on_mismatch: str = "fail", on_bad_image: str = "fail", config: dict | None = None,
                   crop_spec: CropSpec | None = None, dist: Dist | None = None, layout: str = "flat",
                   subset_dirs: dict[str, str] | None = None) -> EvalResult | None:
    """One model's metrics. Under torchrun (``dist.enabled``) the ranks share the image feature extraction
    and only rank 0 goes on to the metrics; the other ranks return None."""
    chosen, not_applicable = resolve_metrics(metric_ids, evalset, params)
    fwd0 = forward_counts(backbones)
    used = sorted({s for _, s in chosen})
    by_subset, report = find_images_layout(samples_dir, {s: evalset.subsets[s] for s in used}, layout=layout,
                                           subset_dirs=subset_dirs, policy=on_mismatch)

    gen_needs: dict[str, set[str]] = {}
    ref_needs: dict[str, set[str]] = {}
    text_subsets: set[str] = set()
    want_crops = False
    for spec, subset in chosen:
        for need in spec.needs_for(params.get(spec.id)):
            if need.backbone == "crops":
                want_crops = True
            elif need.role == "gen":
                gen_needs.setdefault(need.backbone, set()).add(need.feature)
            elif need.role == "ref":
                ref_needs.setdefault(need.backbone, set()).add(need.feature)
            else:
                text_subsets.add(subset)
    ref_paths: list[str] = []
    for spec, subset in chosen:
        if any(n.role == "ref" for n in spec.needs_for(params.get(spec.id))):
            ref_paths += [r.reference for r in evalset.subsets[subset] if r.reference]
    ref_paths = list(dict.fromkeys(ref_paths))
    missing_refs = [p for p in ref_paths if not Path(p).is_file()]
    if missing_refs:
        raise ConfigError(f"{len(missing_refs)} reference images listed in the manifest do not exist "
                          f"(first: {missing_refs[0]}); fix the manifest's 'reference' paths")
    gen_paths = list(dict.fromkeys(p for s in used for v in by_subset[s].values() for _, p in v))
    all_needs = {b: gen_needs.get(b, set()) | ref_needs.get(b, set()) for b in set(gen_needs) | set(ref_needs)}
    crops = None
    if want_crops:
        crops = CropRequest(spec=crop_spec or CropSpec(), backbones={
            "inception": "", **({"object_classifier": "objcls_"} if "object_classifier" in backbones else {})})
    all_paths = list(dict.fromkeys(gen_paths + ref_paths))
    if dist is not None and dist.enabled:
        extract_shard(bank, all_paths, all_needs, on_bad=on_bad_image, crops=crops, dist=dist)
        if not dist.is_main:
            return None
    feats = bank.images(all_paths, all_needs, on_bad=on_bad_image, crops=crops)
    row_of = {p: i for i, p in enumerate(feats.paths)}

    text_emb: dict[str, np.ndarray] = {}
    truncated: set[str] = set()
    if text_subsets:
        texts = []
        for spec, subset in chosen:
            texts += spec.texts(evalset.subsets[subset], params.get(spec.id) or {})
        text_emb, truncated = bank.texts(backbones["clip"], texts)

    stats_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def ref_stats(key: str, subset_refs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if evalset.reference_stats:
            dim = feats.features[key].shape[1] if key in feats.features and feats.features[key].ndim == 2 else 2048
            return load_reference_stats(evalset.reference_stats, dim,
                                        extractor=feature_extractor_id(bank.backbones[key.split(".")[0]]),
                                        declared=evalset.reference_stats_extractor)
        rows = [row_of[p] for p in subset_refs if p in row_of]
        if len(rows) < 2:
            raise ConfigError(f"FID needs reference images (records' 'reference') or data.reference_stats=<npz>; "
                              f"eval set {evalset.name!r} has {len(rows)} usable reference images")
        # Keyed by exactly what the statistics are computed from: the rows' hashes in order, repeats included
        # (a set of hashes would let an eval set that reuses a reference image read another set's statistics).
        shas = [feats.shas[i] for i in rows]
        ck = hashlib.sha256((key + "|" + bank.backbones[key.split('.')[0]].namespace + "|rows-v2|"
                             + ",".join(shas)).encode()).hexdigest()
        if ck not in stats_cache:
            stats_cache[ck] = bank.cached_stats(ck, lambda: fid_statistics(feats.features[key][rows]))
        return stats_cache[ck]

    metrics: dict[str, MetricValue] = {}
    per_sample: dict[str, dict[tuple[str, str], float]] = {}
    samples_by_subset: dict[str, list[Sample]] = {}
    for spec, subset in chosen:
        recs = evalset.subsets[subset]
        samples = [Sample(i, k, p, feats.shas[row_of[p]]) for i, r in enumerate(recs)
                   for k, p in by_subset[subset].get(r.id, []) if p in row_of]
        samples_by_subset[subset] = samples
        srows = [row_of[s.path] for s in samples]
        ref_records = [i for i, r in enumerate(recs) if r.reference and r.reference in row_of]
        sub_refs = [str(recs[i].reference) for i in ref_records]
        ctx = MetricContext(
            subset=subset, records=recs, samples=samples,
            gen_features={f"{b}.{f}": feats.features[f"{b}.{f}"][srows] for b, fs in gen_needs.items() for f in fs},
            ref_features={f"{b}.{f}": feats.features[f"{b}.{f}"][[row_of[p] for p in sub_refs]]
                          for b, fs in ref_needs.items() for f in fs},
            ref_records=ref_records, text_features=text_emb, text_truncated=truncated,
            logit_scale=getattr(backbones.get("clip"), "logit_scale", 100.0),
            ref_stats_fn=functools.partial(ref_stats, subset_refs=sub_refs),
            extra={"class_names": getattr(backbones.get("detector"), "names", None)},
        )
        if crops is not None and any(n.backbone == "crops" for n in spec.needs_for(params.get(spec.id))):
            _attach_crops(ctx, feats.features, srows, [row_of[p] for p in sub_refs])
        if not samples:
            metrics[spec.id] = MetricValue(value=float("nan"), n=0, extras={"reason": "no images found"})
            continue
        mv = spec.compute(ctx, dict(params.get(spec.id) or {}))
        metrics[spec.id] = mv
        if mv.per_sample is not None and len(mv.per_sample) == len(samples):
            per_sample[spec.id] = {(subset, s.path): float(v) for s, v in zip(samples, mv.per_sample)}

    counts = {**report.counts(), "bad_images": len(feats.bad), "images": len(gen_paths) - len(
        [p for p in gen_paths if p in feats.bad]), "reference_images": len(ref_paths)}
    result = EvalResult.build(
        model=model_name, data=evalset.name, specs={s.id: (s, sub) for s, sub in chosen}, metrics=metrics,
        samples_by_subset=samples_by_subset, evalset=evalset, per_sample=per_sample, backbones=backbones,
        counts=counts, not_applicable=not_applicable, report=report, bad=feats.bad,
        n_truncated=len(truncated), config=config or {},
    )
    _record_comparability(result, chosen, params, metrics, backbones, evalset, crops, feats.shas, row_of)
    # Work this run did (0 everywhere on a fully cached re-run; a resumed run shows only what was left).
    fwd1 = forward_counts(backbones)
    result.provenance["backbone_forwards"] = {k: fwd1[k] - fwd0[k] for k in fwd1}
    return result



def eval_domain(evalset: EvalSet) -> str | None:
    """``coco`` / ``cub``: which of TISE's protocols applies, from ``data.domain`` (the one place it is set)."""
    return str(evalset.domain).lower() if evalset.domain else None


def _reference_source(evalset: EvalSet, recs: list, shas: list[str], row_of: dict[str, int],
                      uses_stats: bool) -> str:
    """What a reference-based metric compared against: the stats file (hash + extractor) when the metric reads
    statistics and a file is given, else the reference images (KID, CLIP-I2I, O-FID always read images)."""
    if evalset.reference_stats and uses_stats:
        extractor = getattr(evalset, "reference_stats_extractor", None) or "tise_bench"
        return f"stats:{file_sha256(evalset.reference_stats)[:16]}:{extractor}"
    refs = [shas[row_of[r.reference]] for r in recs if r.reference and r.reference in row_of]
    return "images:" + hashlib.sha256(",".join(refs).encode()).hexdigest()[:16]


def _record_comparability(result: EvalResult, chosen, params, metrics, backbones, evalset: EvalSet,
                          crops: CropRequest | None, shas: list[str], row_of: dict[str, int]) -> None:
    """``protocol`` and ``comparability`` of every metric entry (see :mod:`tise_bench.comparability`)."""
    domain = eval_domain(evalset)
    subset_hash: dict[str, str] = {}  # one content hash per subset, not per metric (30k records each)
    ref_source: dict[tuple[str, bool], str] = {}
    for spec, subset in chosen:
        mv = metrics.get(spec.id)
        if mv is None:
            continue
        recs = evalset.subsets[subset]
        if subset not in subset_hash:
            subset_hash[subset] = records_hash(recs)
        needs = spec.needs_for(params.get(spec.id))
        ref = None
        if any(n.role == "ref" for n in needs):
            uses_stats = getattr(spec.compute, "requires", None) is reference_images_or_stats  # FID-like metrics
            if (subset, uses_stats) not in ref_source:
                ref_source[subset, uses_stats] = _reference_source(evalset, recs, shas, row_of, uses_stats)
            ref = ref_source[subset, uses_stats]
        protocol, fields = comparability(spec.id, spec, dict(params.get(spec.id) or {}), mv, backbones,
                                         domain=domain, eval_set=subset_hash[subset],
                                         crop_spec=crops.spec if crops is not None else None, reference=ref)
        result.meta.setdefault(spec.id, {}).update({"protocol": protocol, "comparability": fields})
