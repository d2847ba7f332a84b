"""Meta-evaluation: how well each metric agrees with human ratings, from run folders and a ratings CSV.

**The ratings file** (UTF-8 CSV with a header) has a ``model`` column and a ``score`` column (higher = better),
and decides the level:

* **per model** (no ``id`` column): one row per model, or several (annotators), averaged. Each metric's value is
  the run's ``metrics.json`` value. Intervals come from the runs' own prompt-bootstrap replicates
  (``bootstrap.npz``): replicate r of every model is drawn on the same prompts (same seed and prompt list:
  paired), so the statistic recomputed on replicate r of all models gives its sampling distribution under
  prompt resampling; the percentile interval is reported. The human scores are held fixed.
* **per image** (an ``id`` column, optional ``k`` for the k-th sample, default 0): rows are matched to the
  run's ``samples.parquet`` by (model, id, k); several ratings of one image are averaged. Every per-sample
  metric column is correlated with the ratings over all matched images of all models (pooled). Intervals:
  percentile bootstrap over prompt ids (an id's images, across models, are drawn together), ``n_boot``
  replicates from ``seed``.

Lower-is-better metrics (``higher_is_better`` false in the registry) are negated first, so positive τ always
means agreement. A metric needs finite values for at least 3 items; others are listed under ``skipped``
with the reason. Nothing here reads the feature cache or runs a network.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..registry import all_metrics
from .stats import MIN_ITEMS, STATISTICS, all_statistics

#: Columns of samples.parquet that are not per-sample metric values.
NOT_METRICS = {"subset", "id", "k", "file", "sha256", "caption"}
#: Statistics summarised in the Markdown table, with their headings.
HEADINGS = {
    "kendall_tau_b": "Kendall τ-b",
    "kendall_tau_c": "Kendall τ-c",
    "spearman": "Spearman ρ",
    "pairwise_accuracy": "pairwise acc.",
}


@dataclass(frozen=True)
class Ratings:
    """Human scores: ``level`` ``model`` -> {model: mean score}; ``image`` -> {(model, id, k): mean score}."""

    level: str
    scores: dict[Any, float]
    n_ratings: int
    path: str


def read_ratings(path: str | Path) -> Ratings:
    """Parse the ratings CSV (module docstring); a bad header, a non-numeric score or an empty file stops with
    a message naming the file, the line and the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the human ratings file {path}: {e}; fix: give human=<a UTF-8 CSV file>") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "model" not in header or "score" not in header:
        raise DataError(
            f"{path}: the header must name a 'model' and a 'score' column (and 'id', optionally 'k', for per-image "
            f"ratings); found {header or 'no header'}"
        )
    level = "image" if "id" in header else "model"
    sums: dict[Any, list[float]] = defaultdict(list)
    for line, raw in enumerate(reader, start=2):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        model = row.get("model", "")
        if not model:
            raise DataError(f"{path}, line {line}: empty model name")
        try:
            score = float(row.get("score", ""))
        except ValueError:
            raise DataError(f"{path}, line {line}: score {row.get('score')!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(f"{path}, line {line}: score {row.get('score')!r} is not finite")
        if level == "model":
            key: Any = model
        else:
            if not row.get("id"):
                raise DataError(f"{path}, line {line}: empty id (per-image ratings need the prompt id)")
            try:
                k = int(row.get("k") or 0)
            except ValueError:
                raise DataError(f"{path}, line {line}: k {row.get('k')!r} is not an integer sample index") from None
            key = (model, row["id"], k)
        sums[key].append(score)
    if not sums:
        raise DataError(f"{path}: no ratings (the file has a header but no rows)")
    n = sum(len(v) for v in sums.values())
    return Ratings(level, {k: float(np.mean(v)) for k, v in sums.items()}, n, str(path))


def _direction(mid: str) -> bool | None:
    spec = all_metrics().get(mid)
    return None if spec is None else bool(spec.higher_is_better)


def _summary(point: dict[str, float], reps: np.ndarray | None, level: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for j, stat in enumerate(STATISTICS):
        v = point[stat]
        entry: dict[str, Any] = {"value": None if math.isnan(v) else v}
        if reps is not None:
            col = reps[:, j]
            col = col[np.isfinite(col)]
            if len(col):
                a = (1 - level) / 2
                entry["ci"] = [float(np.quantile(col, a)), float(np.quantile(col, 1 - a))]
        out[stat] = entry
    return out


def model_level(
    ratings: Ratings, runs: dict[str, Path], *, n_boot: int, level: float
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Per-model agreement of every metric the matched runs report -> (rows, skipped {metric: why}, info)."""
    from ..leaderboard.collect import load_run
    from ..leaderboard.uncertainty import load_replicates

    models = [m for m in ratings.scores if m in runs]
    info: dict[str, Any] = {
        "models": models,
        "unmatched": sorted(m for m in ratings.scores if m not in runs),
        "runs_without_ratings": sorted(m for m in runs if m not in ratings.scores),
    }
    if len(models) < MIN_ITEMS:
        raise DataError(
            f"{ratings.path}: only {len(models)} of its {len(ratings.scores)} models have a run folder "
            f"({', '.join(models) or 'none'}); per-model agreement needs at least {MIN_ITEMS}. Models without a "
            f"run: {', '.join(info['unmatched'][:10]) or 'none'}"
        )
    human = np.array([ratings.scores[m] for m in models])
    values = {m: load_run(runs[m] / "metrics.json")[0]["values"] for m in models}
    reps = {m: load_replicates(m, runs[m]) for m in models} if n_boot > 0 else {}
    metric_ids = sorted({mid for v in values.values() for mid in v})
    rows, skipped = [], {}
    for mid in metric_ids:
        hib = _direction(mid)
        if hib is None:
            skipped[mid] = "not a registered metric (direction unknown)"
            continue
        vec = np.array([np.nan if values[m].get(mid) is None else float(values[m][mid]) for m in models])  # type: ignore[arg-type]
        missing = [m for m, v in zip(models, vec) if not math.isfinite(v)]
        if missing:
            skipped[mid] = f"no value for {', '.join(missing[:5])}"
            continue
        sign = 1.0 if hib else -1.0
        point = all_statistics(sign * vec, human)
        boot, note = _model_replicates(mid, models, reps, n_boot)
        rep_stats = None
        if boot is not None:
            rep_stats = np.array([[all_statistics(sign * b, human)[s] for s in STATISTICS] for b in boot])
        row = {"metric": mid, "higher_is_better": hib, "n": len(models), **_summary(point, rep_stats, level)}
        if boot is not None:
            row["replicates"] = int(len(boot))
        if note:
            row["note"] = note
        rows.append(row)
    return rows, skipped, info


def _model_replicates(mid: str, models: list[str], reps: dict[str, Any], n_boot: int) -> tuple[np.ndarray | None, str]:
    """(R, n_models) paired replicates of ``mid`` across the models, or None and why."""
    if n_boot <= 0:
        return None, ""
    got = [reps[m].replicates.get(mid) for m in models]
    if any(g is None for g in got):
        lacking = [m for m, g in zip(models, got) if g is None]
        return None, f"no interval: no bootstrap replicates in the run of {', '.join(lacking[:5])}"
    keys = {reps[m].pair_key.get(mid) for m in models}
    if len(keys) > 1:
        return None, "no interval: the runs' replicates were drawn on different prompts or seeds (not paired)"
    r = min(n_boot, *(len(g) for g in got if g is not None))
    return np.stack([np.asarray(g, dtype=np.float64)[:r] for g in got if g is not None], axis=1), ""


def image_level(
    ratings: Ratings, runs: dict[str, Path], *, n_boot: int, level: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Per-image agreement of every per-sample metric (pooled over models) -> (rows, skipped, info)."""
    wanted: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for (model, pid, k), score in ratings.scores.items():
        wanted[model][(pid, k)] = score
    unmatched_models = sorted(m for m in wanted if m not in runs)
    frames = []
    for model, by_key in wanted.items():
        if model not in runs:
            continue
        table = runs[model] / "samples.parquet"
        if not table.is_file():
            raise DataError(f"{table} not found: per-image agreement needs the run's samples.parquet; re-run {model!r}")
        df = pd.read_parquet(table)
        df["id"], df["k"] = df["id"].astype(str), df["k"].fillna(0).astype(int)
        cols = [c for c in df.columns if c not in NOT_METRICS]
        per = df.groupby(["id", "k"], sort=False)[cols].first().reset_index()  # first finite value per image
        per["model"] = model
        per["human"] = [by_key.get((i, k), np.nan) for i, k in zip(per["id"], per["k"])]
        frames.append(per[np.isfinite(per["human"])])
    n_ratings_images = sum(len(v) for v in wanted.values())
    pooled = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    info: dict[str, Any] = {
        "images_rated": n_ratings_images,
        "images_matched": int(len(pooled)),
        "unmatched_models": unmatched_models,
    }
    if len(pooled) < MIN_ITEMS:
        raise DataError(
            f"{ratings.path}: only {len(pooled)} of its {n_ratings_images} rated images match a sample of a run "
            f"(by model, id, k); per-image agreement needs at least {MIN_ITEMS}. Models without a run: "
            f"{', '.join(unmatched_models[:10]) or 'none'}"
        )
    human = pooled["human"].to_numpy(dtype=np.float64)
    ids = pooled["id"].to_numpy()
    uniq, inverse = np.unique(ids, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(uniq), len(uniq)) for _ in range(n_boot)]
    rows, skipped = [], {}
    for mid in [c for c in pooled.columns if c not in NOT_METRICS | {"model", "human"}]:
        hib = _direction(mid)
        if hib is None:
            skipped[mid] = "not a registered metric (direction unknown)"
            continue
        vec = pd.to_numeric(pooled[mid], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(vec)
        if ok.sum() < MIN_ITEMS:
            skipped[mid] = f"per-sample values for only {int(ok.sum())} rated images"
            continue
        sign = 1.0 if hib else -1.0
        point = all_statistics(sign * vec, human)
        rep_stats = None
        if draws:
            rep_stats = np.array(
                [
                    [v for v in all_statistics(sign * vec[idx], human[idx]).values()]
                    for idx in (np.concatenate([members[g] for g in d]) for d in draws)
                ]
            )
        row = {"metric": mid, "higher_is_better": hib, "n": int(ok.sum()), **_summary(point, rep_stats, level)}
        if draws:
            row["replicates"] = len(draws)
        rows.append(row)
    return rows, skipped, info


def agreement(
    ratings_path: str | Path,
    data_dir: str | Path,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The agreement report of every run under ``data_dir`` with the ratings file (JSON-ready dict)."""
    from ..leaderboard.collect import collect_runs

    if not 0 < level < 1:
        raise ConfigError(f"level={level!r}: give a confidence level between 0 and 1 (e.g. 0.95)")
    if n_boot < 0:
        raise ConfigError(f"bootstrap={n_boot!r}: give a number of replicates ≥ 0 (0 = no intervals)")
    data_dir = Path(data_dir)
    collected = collect_runs(data_dir)
    if not collected.run_dirs:
        raise DataError(f"no run folders under {data_dir}; evaluate the models first (python -m tise_bench ...)")
    ratings = read_ratings(ratings_path)
    if ratings.level == "model":
        rows, skipped, info = model_level(ratings, collected.run_dirs, n_boot=n_boot, level=level)
        interval = "percentile, over the runs' paired prompt-bootstrap replicates (human scores fixed)"
    else:
        rows, skipped, info = image_level(ratings, collected.run_dirs, n_boot=n_boot, level=level, seed=seed)
        interval = f"percentile, {n_boot} bootstrap draws of prompt ids (seed {seed})"
    rows.sort(key=lambda r: -(r["kendall_tau_b"]["value"] if r["kendall_tau_b"]["value"] is not None else -9.0))
    random = sorted(set(collected.random_weights) & set(info.get("models") or collected.run_dirs))
    return {
        "data": data_dir.name,
        "ratings": ratings.path,
        "level": ratings.level,
        "n_ratings": ratings.n_ratings,
        "confidence": level,
        "interval": interval if n_boot > 0 else None,
        "statistics": list(STATISTICS),
        "rows": rows,
        "skipped": skipped,
        **info,
        "random_weights": random,
        "warning": (
            "RANDOM-WEIGHTS BACKBONES in some runs: their metric values are smoke-test numbers" if random else None
        ),
    }


def to_markdown(report: dict[str, Any], decimals: int = 3) -> str:
    """The agreement table (one row per metric, best τ-b first) with intervals when present."""
    from ..leaderboard.tables import markdown_escape as md_cell

    def cell(e: dict[str, Any]) -> str:
        v = e.get("value")
        if v is None:
            return "–"
        ci = e.get("ci")
        return f"{v:.{decimals}f}" + (f" [{ci[0]:.{decimals}f}, {ci[1]:.{decimals}f}]" if ci else "")

    lines = [
        f"Agreement with human ratings ({report['level']} level, {report['ratings']}; "
        f"{int(report['confidence'] * 100)}% intervals: {report['interval'] or 'none'})",
        "",
        "| metric | n | " + " | ".join(HEADINGS[s] for s in STATISTICS) + " |",
        "|---|---:|" + "---:|" * len(STATISTICS),
    ]
    for r in report["rows"]:
        lines.append(f"| {md_cell(r['metric'])} | {r['n']} | " + " | ".join(cell(r[s]) for s in STATISTICS) + " |")
    for mid, why in report["skipped"].items():
        lines.append(f"\n- skipped {md_cell(mid)}: {md_cell(why)}")
    if report.get("warning"):
        lines.append(f"\n**{report['warning']}**")
    return "\n".join(lines) + "\n"


def to_csv_rows(report: dict[str, Any]) -> list[list[str]]:
    """Header + one row per metric: value, CI low, CI high per statistic."""
    head = ["metric", "n"]
    for s in STATISTICS:
        head += [s, f"{s}_ci_low", f"{s}_ci_high"]
    out = [head]
    for r in report["rows"]:
        row = [r["metric"], str(r["n"])]
        for s in STATISTICS:
            e = r[s]
            ci = e.get("ci") or [None, None]
            row += ["" if x is None else repr(float(x)) for x in (e.get("value"), ci[0], ci[1])]
        out.append(row)
    return out
