"""Hand-written run results and extra-row CSVs for the leaderboard tests (no evaluator involved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tise_bench.registry import all_metrics

# The metrics.json contract's unit per metric (registry MetricSpec.unit), written by hand so that the fixtures do
# not depend on the writer side.
UNITS = {
    "clip_rp": "percent",
    "pa": "percent",
    "soa_c": "percent",
    "soa_i": "percent",
    "clip_score": "score",
    "ref_clip_score": "score",
    "is": "score",
    "is_star": "score",
    "o_is": "score",
    "clip_i2i": "score",
    "fid": "distance",
    "o_fid": "distance",
    "ca": "count_rmse",
}


def write_run(
    root: Path,
    data: str,
    model: str,
    values: dict[str, float | None],
    *,
    folder: str | None = None,
    step: int | None = None,
    random_weights: bool = False,
    legacy: bool = False,
    protocol: dict[str, str] | None = None,
    comparability: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``<root>/<data>/<folder or model>/metrics.json`` shaped like tise_bench.results writes it.

    Every entry carries ``unit``, ``protocol`` (``"tise"`` unless ``protocol[mid]`` says otherwise) and
    ``comparability`` (``{"unit", "protocol"}`` + ``comparability[mid]``). ``legacy=True`` writes a run from
    before comparability recording: no ``unit``/``protocol``/``comparability`` keys at all.
    """
    specs = all_metrics()
    metrics: dict[str, Any] = {}
    for mid, v in values.items():
        entry = {"value": v, "n": 8, **{k: x for k, x in specs[mid].meta().items() if k != "unit"}}
        if not legacy:
            proto = (protocol or {}).get(mid, "tise")
            entry.update(
                unit=UNITS[mid],
                protocol=proto,
                comparability={"unit": UNITS[mid], "protocol": proto, **(comparability or {}).get(mid, {})},
            )
        metrics[mid] = entry
    config: dict[str, Any] = {"model": {"name": model, **({"step": step} if step is not None else {})}}
    out = root / data / (folder or model)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema_version": 1,
        "model": model,
        "data": data,
        "metrics": metrics,
        "random_weights": random_weights,
        "config": config,
    }
    (out / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path
