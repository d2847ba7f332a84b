"""The prompt bootstrap follows each metric's recorded unit: percent SOA (0/1 per-sample hits, value ×100) gets an
interval on the value's own scale; a run written before units were recorded (SOA a fraction) still does."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tise_bench.leaderboard.bootdata import mean_scale
from tise_bench.leaderboard.uncertainty import add_uncertainty

CLASSES = ["dog", "cat", "car"]


def _soa_run(root: Path, model: str, unit: str | None, seed: int) -> tuple[Path, float]:
    """30 prompts (10 per class), 2 images each, per-sample SOA hits 0/1; metrics.json in ``unit`` (None: legacy)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    man = root / "soa.jsonl"
    recs = [{"id": f"p{i:02d}", "caption": f"a {CLASSES[i % 3]}", "category": CLASSES[i % 3]} for i in range(30)]
    man.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows = [{"subset": "soa", "id": r["id"], "k": k, "file": f"{model}/{r['id']}_{k}.png", "sha256": f"{i}{k}" * 8,
             "caption": r["caption"], "soa_c": float(rng.random() < 0.6), "soa_i": float(rng.random() < 0.6)}
            for i, r in enumerate(recs) for k in range(2)]
    table = pd.DataFrame(rows)
    per_class = table.assign(c=[CLASSES[int(i[1:]) % 3] for i in table["id"]]).groupby("c")["soa_c"].mean()
    fraction = {"soa_c": float(per_class.mean()), "soa_i": float(table["soa_i"].mean())}
    scale = 100.0 if unit == "percent" else 1.0
    out = root / model
    out.mkdir()
    table.to_parquet(out / "samples.parquet", index=False)
    metrics = {m: {"value": v * scale, "subset": "soa", **({"unit": unit} if unit else {})}
               for m, v in fraction.items()}
    (out / "metrics.json").write_text(json.dumps({"model": model, "eval_set": {"manifests": {"soa": str(man)}},
                                                  "metrics": metrics, "config": {}}))
    return out, fraction["soa_c"] * scale


@pytest.mark.parametrize("unit, scale", [("percent", 100.0), (None, 1.0)])
def test_soa_interval_on_the_scale_of_the_reported_value(tmp_path, unit, scale):
    run, soa_c = _soa_run(tmp_path, "m", unit, seed=3)
    lb = {"metrics": [{"id": "soa_c", "display": "SOA-C", "higher_is_better": True},
                      {"id": "soa_i", "display": "SOA-I", "higher_is_better": True}],
          "aspects": {"object accuracy": ["soa_c", "soa_i"]}, "excluded": {},
          "rows": [{"model": "m", "external": False, "values": {"soa_c": soa_c}}]}
    add_uncertainty(lb, {"m": run}, tmp_path / "cache", n_boot=200)
    assert lb["bootstrap"]["skipped"] == {}  # identity resample reproduces the reported (percent) value
    lo, hi = lb["rows"][0]["ci"]["soa_c"]
    assert lo < soa_c < hi and 0.05 * scale < hi - lo < 0.6 * scale


def test_mean_scale_by_unit():
    hits, pct = np.array([0.0, 1.0, np.nan]), np.array([0.0, 100.0])
    assert mean_scale("soa_c", "percent", hits) == 100.0 and mean_scale("soa_c", "percent", pct) == 1.0
    assert mean_scale("soa_c", None, hits) == 1.0 and mean_scale("clip_rp", None, hits) == 100.0
    assert mean_scale("clip_score", "score", hits) == 1.0 and mean_scale("pa", "percent", hits) == 100.0
