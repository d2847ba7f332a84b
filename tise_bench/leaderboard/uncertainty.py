"""Bootstrap uncertainty for a leaderboard: CIs per metric, RS rank probabilities, Kendall tau, paired tests.

The replicates come from the runs: every evaluation writes each metric's prompt-bootstrap replicates into its
folder (``bootstrap.npz``, described by the ``bootstrap`` section of ``metrics.json``; see
:mod:`tise_bench.bootstrap`). This pass reads only those files — no feature cache, no metric code. Runs whose
subset has the same prompts and the same ``bootstrap.seed`` drew the same replicates, so differences between
two models are paired; metrics whose runs drew differently are listed under ``unpaired_metrics`` and get no
paired test. A metric a run could not resample is listed in ``lb["bootstrap"]["skipped"]`` with the run's reason.

``external`` rows (published numbers) have no per-sample data: no CI; they enter the RS replicates with their
fixed values. Two-sided p-value of a paired difference: ``2·min(P(d* ≤ 0), P(d* ≥ 0))`` over the replicates,
clipped to ``[1/B, 1]`` (B = replicates; the resolution of a bootstrap p-value is 1/B).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, rankdata

from ..errors import DataError
from .ranking import rank_values
from .schema import Leaderboard, Paired

log = logging.getLogger(__name__)
NO_REPLICATES = (
    "the run wrote no bootstrap replicates (evaluated before runs wrote them, or with "
    "bootstrap.replicates=0): re-run its evaluation — cached features need no network forward"
)


@dataclass
class RunReplicates:
    """What one run folder holds for the bootstrap."""

    model: str
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # metric id -> (B,) values
    pair_key: dict[str, str] = field(default_factory=dict)  # metric id -> "<seed>|<draw key>" (equal = paired)
    skipped: dict[str, str] = field(default_factory=dict)  # metric id -> why it has no replicates
    seed: int | None = None


def load_replicates(model: str, run_dir: Path) -> RunReplicates:
    """Read the ``bootstrap`` section of ``metrics.json`` and the replicates file it names."""
    run_dir = Path(run_dir)
    mj = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    out = RunReplicates(model)
    boot: dict[str, Any] = mj.get("bootstrap") or {}
    entries = boot.get("metrics") or {}
    out.skipped = {m: str(why) for m, why in (boot.get("skipped") or {}).items()}
    for mid in mj.get("metrics") or {}:
        if mid not in entries and mid not in out.skipped:
            out.skipped[mid] = NO_REPLICATES
    if not entries:
        return out
    path = run_dir / str(boot.get("file") or "bootstrap.npz")
    if not path.is_file():
        raise DataError(
            f"{run_dir / 'metrics.json'} lists bootstrap replicates in {path.name}, which is missing: "
            f"the run folder is incomplete; re-run the evaluation of {model!r}"
        )
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    out.seed = int(boot.get("seed", 0))
    for mid, e in entries.items():
        if mid not in arrays:
            raise DataError(
                f"{path}: no replicates for {mid!r} though metrics.json lists them; re-run the evaluation of {model!r}"
            )
        out.replicates[mid] = arrays[mid]
        out.pair_key[mid] = f"{out.seed}|{e.get('draw_key')}"
    return out


def ranking_scores(
    values: list[dict[str, float | None]], aspects: dict[str, list[str]], direction: dict[str, bool]
) -> np.ndarray:
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
        keep = [
            m
            for m in ms
            if m in direction and m not in excluded and all((r.get("values") or {}).get(m) is not None for r in rows)
        ]
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
            probs[i, int(lo[i]) - 1 : int(hi[i])] += 1.0 / (hi[i] - lo[i] + 1)
    return probs / max(b, 1)


def add_uncertainty(lb: Leaderboard, run_dirs: dict[str, Path], n_boot: int = 1000, level: float = 0.95) -> None:
    """Add bootstrap CIs, rank probabilities, Kendall tau and paired tests to ``lb`` (in place).

    ``run_dirs``: model -> its run folder (every non-external row needs one). Each metric uses the first
    ``n_boot`` replicates its run wrote (fewer where the run wrote fewer: ``bootstrap.replicates_features`` for
    the IS and FID families); RS, rank probabilities and Kendall tau use the replicates every ranked metric has.
    """
    t_start = time.perf_counter()
    columns = lb.get("metrics") or []
    direction = {c["id"]: bool(c["higher_is_better"]) for c in columns}
    ids = list(direction)
    rows = lb["rows"]
    runs = [r for r in rows if not r.get("external")]
    missing = [r["model"] for r in runs if r["model"] not in run_dirs]
    if missing:
        raise DataError(
            f"add_uncertainty: no run folder for {missing}; pass run_dirs[model] = the folder with its "
            "metrics.json and bootstrap.npz"
        )
    reps: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, dict[str, str]] = {}
    pair_key: dict[tuple[str, str], str] = {}
    used: dict[str, int] = {}
    seeds = set()
    for row in runs:
        run = load_replicates(row["model"], Path(run_dirs[row["model"]]))
        own = {m: run.replicates[m][:n_boot] for m in ids if m in run.replicates}
        reps[row["model"]] = own
        pair_key.update({(row["model"], m): run.pair_key[m] for m in own})
        used.update({m: min(used.get(m, len(v)), len(v)) for m, v in own.items()})
        if run.seed is not None:
            seeds.add(run.seed)
        row["ci"] = {m: percentile_ci(v, level) for m, v in own.items()}
        why = {m: w for m, w in run.skipped.items() if m in direction and m not in own}
        if why:
            skipped[row["model"]] = why

    aspects = _rs_metrics(lb, direction)
    rs_ids = {m for ms in aspects.values() for m in ms}
    n_rs = min([n_boot] + [len(v) for own in reps.values() for m, v in own.items() if m in rs_ids])
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
    undefined_why = _tau_undefined_why(rs_reps, point, taus)
    limited = sorted(
        m
        for m in rs_ids
        if n_rs < n_boot and min((len(own[m]) for own in reps.values() if m in own), default=0) == n_rs
    )

    paired: list[Paired] = []
    unpaired: set[str] = set()
    for i, a in enumerate(runs):
        for b_row in runs[i + 1 :]:
            for m in ids:
                ra, rb = reps[a["model"]].get(m), reps[b_row["model"]].get(m)
                va, vb = (a.get("values") or {}).get(m), (b_row.get("values") or {}).get(m)
                if ra is None or rb is None or va is None or vb is None:
                    continue
                if pair_key[(a["model"], m)] != pair_key[(b_row["model"], m)]:
                    unpaired.add(m)  # other prompts or another seed: the replicates are not paired draws
                    continue
                d = ra[: min(len(ra), len(rb))] - rb[: min(len(ra), len(rb))]
                paired.append(
                    Paired(
                        a=a["model"],
                        b=b_row["model"],
                        metric=m,
                        diff=float(va) - float(vb),
                        ci=percentile_ci(d, level),
                        p=two_sided_p(d),
                    )
                )
    lb["paired"] = paired
    lb["bootstrap"] = {
        "n": int(n_boot),
        "replicates": dict(sorted(used.items())),
        "n_rank": int(n_rs),
        "seed": sorted(seeds)[0] if len(seeds) == 1 else sorted(seeds),
        "level": float(level),
        "method": "percentile, resampling prompts",
        "source": "replicates written by each run (bootstrap.npz)",
        "skipped": skipped,
        "unpaired_metrics": sorted(unpaired),
        "kendall_tau_undefined": len(taus) - len(lb["kendall_tau"]),
        "kendall_tau_undefined_why": undefined_why,
        "n_rank_limited_by": limited,  # ranked metrics whose replicate count (< n) bounds the RS resamples
        "external_rows": "no per-sample data: no CI; fixed values in the RS replicates",
        "p_value": "2*min(P(diff* <= 0), P(diff* >= 0)), clipped to [1/B, 1]",
        "seconds": round(time.perf_counter() - t_start, 3),
    }


def _tau_undefined_why(rs_reps: np.ndarray, point: np.ndarray, taus: list[float]) -> str | None:
    """Why Kendall τ is NaN in some resamples: τ-b is undefined when one of the two rankings is constant, i.e.
    every row shares one RS (frequent with two or three models, whose aspect ranks often cancel out)."""
    bad = [i for i, t in enumerate(taus) if not math.isfinite(t)]
    if not bad:
        return None
    if len(point) > 1 and np.ptp(point) == 0:
        return "every row has the same point RS, so there is no ranking to compare with"
    tied = sum(1 for i in bad if np.ptp(rs_reps[i]) == 0)
    why = "every row tied on RS (one shared rank), and τ is undefined for a constant ranking"
    if tied == len(bad):
        return why
    return f"{tied} where {why}; {len(bad) - tied} with a non-finite τ for another reason"


def percentile_ci(reps: np.ndarray, level: float) -> list[float]:
    """Percentile interval of the finite replicates; [nan, nan] when there are none."""
    r = np.asarray(reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return [math.nan, math.nan]
    a = (1.0 - level) / 2.0
    return [float(np.quantile(r, a)), float(np.quantile(r, 1.0 - a))]


def two_sided_p(diffs: np.ndarray) -> float:
    """Bootstrap p-value for diff = 0: 2·min(P(d* ≤ 0), P(d* ≥ 0)), clipped to [1/B, 1] (B finite replicates)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        return math.nan
    p = 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0)))
    return float(min(max(p, 1.0 / len(d)), 1.0))
