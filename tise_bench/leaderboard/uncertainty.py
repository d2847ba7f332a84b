"""Bootstrap uncertainty for a leaderboard: CIs per metric, RS rank probabilities, Kendall tau, paired tests.

Resampling unit: the prompts (record ids) of each eval-set subset, drawn with replacement; every sample of
a drawn prompt comes along (multi-sample prompts), and every object crop of a drawn image. On each
replicate EVERY metric is recomputed from per-sample data (means, per-word PA, per-class SOA-C) or from the
cached features (IS, IS*, O-IS on logits; FID, O-FID on pool3 against fixed reference statistics) — see
:mod:`.bootdata` and :mod:`.resample`. Runs whose subset has the same prompt ids (same manifest) share the
draws, so differences between two models are paired. Draws of a subset come from
``np.random.default_rng([seed, crc32(subset key)])``: they do not depend on which other runs or subsets exist.

A metric gets an interval only if recomputing it on the identity resample reproduces the value in
``metrics.json`` (relative 1e-6; FID family 1e-3, see ``IDENTITY_RTOL``); otherwise it is listed in ``lb["bootstrap"]["skipped"]`` with the reason.
``external`` rows (published numbers) have no per-sample data: no CI; they enter the RS replicates with
their fixed values. Two-sided p-value of a paired difference: ``2·min(P(d* ≤ 0), P(d* ≥ 0))`` over the
replicates, clipped to ``[1/B, 1]`` (B = replicates; the resolution of a bootstrap p-value is 1/B).
"""
from __future__ import annotations

import logging
import math
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, rankdata

from ..errors import DataError
from .bootdata import Recipe, RunData, SubsetRows, load_run
from .ranking import rank_values
from .resample import (csr_from_owner, draw_prompts, expand, grouped_mean, is_replicates, percentile_ci,
                       prompt_counts, two_sided_p)
from .schema import Leaderboard, Paired

log = logging.getLogger(__name__)
METHOD = "percentile, resampling prompts"
IDENTITY_RTOL = {"mean": 1e-6, "is": 1e-6, "fid": 1e-3}
# FID replicates use the exact low-rank formula (resample.FidReplicator); on 2048-d features with a
# dominant eigenvalue ~1e9 (random weights) FID is a difference of large terms and any two algebraically
# equal formulas (incl. the metric's general eigensolver) agree only to ~1e-4 relative: round-off, not bias.


def replicate_values(recipe: Recipe, sub: SubsetRows, draws: np.ndarray) -> np.ndarray:
    """The metric of ``recipe`` on each replicate of ``draws`` ((B, P) prompt indices) -> (B,)."""
    n_prompts = len(sub.records)
    if recipe.kind == "mean":
        assert recipe.values is not None and recipe.prompt_of_row is not None, \
            f"mean recipe of {recipe.metric!r} carries per-row values and their prompts"
        weights = prompt_counts(draws, n_prompts)[:, recipe.prompt_of_row]
        return recipe.scale * grouped_mean(weights, recipe.values, recipe.groups, recipe.row_weight)
    csr = csr_from_owner(sub.prompt_of_sample, n_prompts)
    crop_csr = None if recipe.crop_owner is None else csr_from_owner(recipe.crop_owner, len(sub.prompt_of_sample))
    rows = []
    for b in range(draws.shape[0]):
        r = expand(draws[b], csr)
        if recipe.sample_rank is not None:
            r = r[np.argsort(recipe.sample_rank[r], kind="stable")]
        rows.append(r if crop_csr is None else expand(r, crop_csr))
    if recipe.kind == "is":
        assert recipe.logits is not None, f"IS recipe of {recipe.metric!r} carries its logits"
        return is_replicates(recipe.logits, rows, recipe.temperature, recipe.splits, recipe.seed, recipe.split_mode)
    assert recipe.fid is not None, f"FID recipe of {recipe.metric!r} carries its replicator"
    n_rows = recipe.fid.x.shape[0]
    return np.asarray([recipe.fid.replicate(np.bincount(r, minlength=n_rows), r) for r in rows])


def _draws(key: str, n_prompts: int, n: int, seed: int) -> np.ndarray:
    return draw_prompts(n_prompts, n, np.random.default_rng([seed, zlib.crc32(key.encode())]))


def _bootstrap_run(run: RunData, ids: list[str], n_boot: int, n_feat: int, seed: int,
                   timings: dict[str, float]) -> dict[str, np.ndarray]:
    """Replicates of every metric in ``ids`` that can be recomputed; failures go to ``run.skipped``."""
    out: dict[str, np.ndarray] = {}
    for mid in ids:
        recipe = run.recipes.get(mid)
        if recipe is None:
            run.skipped.setdefault(mid, "not in metrics.json")
            continue
        sub = run.subsets[recipe.subset]
        ident = replicate_values(recipe, sub, np.arange(len(sub.records))[None, :])[0]
        reported = float(run.metrics[mid]["value"])
        if not (math.isfinite(ident) and abs(ident - reported) <= IDENTITY_RTOL[recipe.kind] * max(1.0, abs(reported))):
            run.skipped[mid] = (f"recomputation from per-sample data gives {ident!r} on the identity resample, "
                                f"metrics.json says {reported!r}: no interval")
            continue
        n = n_boot if recipe.kind == "mean" else n_feat
        t0 = time.perf_counter()
        out[mid] = replicate_values(recipe, sub, _draws(sub.key, len(sub.records), n_boot, seed)[:n])
        timings[mid] = timings.get(mid, 0.0) + (time.perf_counter() - t0) / max(n, 1)
    return out


def ranking_scores(values: list[dict[str, float | None]], aspects: dict[str, list[str]],
                   direction: dict[str, bool]) -> np.ndarray:
    """RS per row: per metric rank (best = N, ties averaged), aspect = mean rank of its metrics, RS = sum."""
    rs = np.zeros(len(values))
    for metrics in aspects.values():
        ranks = [rank_values([float(v[m]) for v in values], direction[m]) for m in metrics]  # type: ignore[arg-type]
        if ranks:
            rs += np.mean(np.asarray(ranks), axis=0)
    return rs


def _rs_metrics(lb: Leaderboard, direction: dict[str, bool]) -> dict[str, list[str]]:
    excluded = set(lb.get("excluded") or {})
    rows = lb["rows"]
    out = {}
    for aspect, ms in (lb.get("aspects") or {}).items():
        keep = [m for m in ms if m in direction and m not in excluded
                and all((r.get("values") or {}).get(m) is not None for r in rows)]
        if keep:
            out[aspect] = keep
    return out


def _rank_probabilities(rs_reps: np.ndarray) -> np.ndarray:
    """(B, N) RS -> (N, N) P(rank = r) with N = best; a tie over ranks lo..hi shares its mass equally."""
    b, n = rs_reps.shape
    probs = np.zeros((n, n))
    for rs in rs_reps:
        lo, hi = rankdata(rs, method="min"), rankdata(rs, method="max")
        for i in range(n):
            probs[i, int(lo[i]) - 1:int(hi[i])] += 1.0 / (hi[i] - lo[i] + 1)
    return probs / max(b, 1)


def add_uncertainty(lb: Leaderboard, run_dirs: dict[str, Path], cache_dir: Path, n_boot: int = 1000,
                    seed: int = 0, level: float = 0.95, *, n_boot_features: int | None = None) -> None:
    """Add bootstrap CIs, rank probabilities, Kendall tau and paired tests to ``lb`` (in place).

    ``run_dirs``: model -> folder holding its ``metrics.json`` + ``samples.parquet`` (every non-external row
    needs one). ``n_boot_features`` (default ``n_boot``): replicates for metrics recomputed from features
    (IS family, FID family); RS, rank probabilities and Kendall tau use ``min(n_boot, n_boot_features)``.
    """
    t_start = time.perf_counter()
    n_feat = n_boot if n_boot_features is None else min(int(n_boot_features), n_boot)
    columns = lb.get("metrics") or []
    direction = {c["id"]: bool(c["higher_is_better"]) for c in columns}
    ids = list(direction)
    rows = lb["rows"]
    runs = [r for r in rows if not r.get("external")]
    missing = [r["model"] for r in runs if r["model"] not in run_dirs]
    if missing:
        raise DataError(f"add_uncertainty: no run folder for {missing}; pass run_dirs[model] = the folder with its "
                        "metrics.json and samples.parquet")
    reps: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, dict[str, str]] = {}
    timings: dict[str, float] = {}
    draw_key: dict[tuple[str, str], str] = {}
    for row in runs:
        run = load_run(row["model"], Path(run_dirs[row["model"]]), Path(cache_dir))
        reps[row["model"]] = _bootstrap_run(run, ids, n_boot, n_feat, seed, timings)
        draw_key.update({(row["model"], m): run.subsets[r.subset].key for m, r in run.recipes.items()})
        row["ci"] = {m: percentile_ci(v, level) for m, v in reps[row["model"]].items()}
        if run.skipped:
            skipped[row["model"]] = {m: why for m, why in run.skipped.items() if m in direction}

    aspects = _rs_metrics(lb, direction)
    n_rs = min(n_boot, n_feat)
    point = ranking_scores([r.get("values") or {} for r in rows], aspects, direction)
    rs_reps = np.zeros((n_rs, len(rows)))
    for b in range(n_rs):
        vals = []
        for r in rows:
            v = dict(r.get("values") or {})
            own = {} if r.get("external") else reps.get(r["model"], {})
            for m, arr in own.items():
                if b < len(arr) and math.isfinite(arr[b]):
                    v[m] = float(arr[b])
            vals.append(v)
        rs_reps[b] = ranking_scores(vals, aspects, direction)
    taus = [float(kendalltau(rs, point).statistic) if len(rows) > 1 else 1.0 for rs in rs_reps]
    probs = _rank_probabilities(rs_reps)
    lb["rank_probabilities"] = {r["model"]: probs[i].tolist() for i, r in enumerate(rows)}
    lb["kendall_tau"] = [t for t in taus if math.isfinite(t)]

    paired: list[Paired] = []
    for i, a in enumerate(runs):
        for b_row in runs[i + 1:]:
            for m in ids:
                ra, rb = reps[a["model"]].get(m), reps[b_row["model"]].get(m)
                va, vb = (a.get("values") or {}).get(m), (b_row.get("values") or {}).get(m)
                if ra is None or rb is None or va is None or vb is None:
                    continue
                d = ra[:min(len(ra), len(rb))] - rb[:min(len(ra), len(rb))]
                paired.append(Paired(a=a["model"], b=b_row["model"], metric=m, diff=float(va) - float(vb),
                                     ci=percentile_ci(d, level), p=two_sided_p(d)))
    lb["paired"] = paired
    unpaired = sorted({m for m in ids if len({draw_key[(r["model"], m)] for r in runs
                                              if (r["model"], m) in draw_key}) > 1})
    lb["bootstrap"] = {
        "n": int(n_boot), "n_features": int(n_feat), "n_rank": int(n_rs), "seed": int(seed), "level": float(level),
        "method": METHOD, "skipped": skipped, "unpaired_metrics": unpaired,
        "kendall_tau_undefined": len(taus) - len(lb["kendall_tau"]),
        "external_rows": "no per-sample data: no CI; fixed values in the RS replicates",
        "p_value": "2*min(P(diff* <= 0), P(diff* >= 0)), clipped to [1/B, 1]",
        "seconds_per_replicate": {m: round(t / max(len(runs), 1), 6) for m, t in sorted(timings.items())},
        "seconds": round(time.perf_counter() - t_start, 3),
    }
