"""Plan before compute: which metrics run on an eval set, what each needs, and why the others are left out.

One planning step, shared by the CLI and the API (:func:`tise_bench.runner.evaluate_config`), decides before any
backbone is built or image read: it resolves the metric ids (and their parameters), checks that the eval set
supports each metric (``MetricSpec.requires``: record fields, reference images or statistics) and TISE's protocol
requirements, and merges the feature needs into one FeatureBank pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .evalset import EvalSet
from .registry import MetricSpec, Need, get_metric


def resolve_metrics(
    ids: list[str], evalset: EvalSet, params: dict[str, dict[str, Any]]
) -> tuple[list[tuple[MetricSpec, str]], dict[str, str]]:
    """-> ([(spec, subset)], {id: reason} for metrics this eval set cannot run)."""
    chosen, skipped = [], {}
    for mid in ids:
        spec = get_metric(mid)
        subset = spec.resolve_params(params.get(mid)).get("subset") or spec.subset  # checks every key
        if subset not in evalset.subsets:
            skipped[mid] = f"eval set {evalset.name!r} has no {subset!r} subset"
            continue
        chosen.append((spec, subset))
    for mid in params:
        if mid not in ids:
            get_metric(mid).resolve_params(params[mid])  # a typo in metrics.params.<id>... is refused, not ignored
    return chosen, skipped


def check_requirements(
    chosen: list[tuple[MetricSpec, str]],
    params: dict[str, dict[str, Any]],
    backbones_cfg: dict[str, Any],
    evalset: EvalSet,
) -> None:
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
                f"(recorded as a divergence from TISE's CUB protocol)."
            )


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


def plan(
    ids: list[str],
    evalset: EvalSet,
    params: dict[str, dict[str, Any]],
    backbones_cfg: dict[str, Any],
    *,
    on_unsupported: str = "fail",
    fix: str = "",
) -> Plan:
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
        raise ConfigError(
            f"on_unsupported={on_unsupported!r}: valid values are {', '.join(ON_UNSUPPORTED)} "
            "(fail: stop before any work; skip: compute the rest, list the others as not_applicable)"
        )
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
        raise ConfigError(
            f"eval set {evalset.name!r} cannot support {len(unsupported)} requested metric(s):\n{lines}"
            + (f"\n  fix: {fix}" if fix else "")
        )
    reasons = {**absent, **unsupported}
    if ids and not chosen:  # nothing would be computed: say why now, not "0 prompt ids" when images are matched
        why = "; ".join(f"{mid}: {reasons[mid]}" for mid in ids if mid in reasons)
        raise ConfigError(
            f"none of the selected metrics can run on eval set {evalset.name!r} ({why}). Give the subset's manifest "
            f"(data.subsets.<subset>=<file.jsonl>, or one data.manifest for every subset) or choose other metrics.ids"
        )
    check_requirements(chosen, params, backbones_cfg, evalset)
    needs = tuple(dict.fromkeys(n for spec, _ in chosen for n in spec.needs_for(params.get(spec.id))))
    return Plan(chosen=chosen, not_applicable={m: reasons[m] for m in ids if m in reasons}, needs=needs)
