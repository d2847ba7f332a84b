"""Hand-written run results and extra-row CSVs for the leaderboard tests (no evaluator involved)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tise_bench.registry import all_metrics


def write_run(root: Path, data: str, model: str, values: dict[str, float | None], *, folder: str | None = None,
              step: int | None = None, random_weights: bool = False) -> Path:
    """``<root>/<data>/<folder or model>/metrics.json`` shaped like tise_bench.results writes it."""
    specs = all_metrics()
    metrics: dict[str, Any] = {
        mid: {"value": v, "n": 8, **specs[mid].meta()} for mid, v in values.items()
    }
    config: dict[str, Any] = {"model": {"name": model, **({"step": step} if step is not None else {})}}
    out = root / data / (folder or model)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": 1, "model": model, "data": data, "metrics": metrics,
           "random_weights": random_weights, "config": config}
    (out / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path
