"""The prompt bootstrap follows what the run recorded: percent SOA (0/1 per-sample hits, value ×100) gets an
interval on the value's own scale, a run written before units were recorded (SOA a fraction) still does; IS
replicates use the metric's split procedure (O-IS: TISE's loop); runs from before crop rounding existed keep
their outward-rounded crops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tise_bench.leaderboard.bootdata import RunData, _Features, _split_mode, mean_scale
from tise_bench.leaderboard.resample import is_replicates
from tise_bench.leaderboard.uncertainty import add_uncertainty
from tise_bench.metrics.inception import inception_score, inception_score_tise_objects

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


def test_is_replicates_follow_the_metrics_split_mode():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(37, 12)) * 3
    ident = [np.arange(37)]
    t = 2.1737587451934814
    assert is_replicates(logits, ident, t, 10, 2020, "tise_objects")[0] == \
        inception_score_tise_objects(logits, temperature=t, splits=10)[0]  # 10 splits of 3, 7 rows dropped
    assert is_replicates(logits, ident, t, 10, 2020, "tise")[0] == \
        inception_score(logits, temperature=t, splits=10, shuffle=False)[0]
    assert is_replicates(logits, ident, t, 10, 2020)[0] == inception_score(logits, temperature=t, splits=10)[0]
    modes = ("tise_objects", "tise", "torch_fidelity")
    assert len({is_replicates(logits, ident, t, 10, 2020, m)[0] for m in modes}) == 3
    assert np.isnan(is_replicates(logits, [np.arange(9)], t, 10, 2020, "tise_objects")[0])  # N < splits: TISE NaN


def test_o_is_split_mode_and_legacy_crop_rounding_read_from_the_run():
    assert _split_mode("o_is", {"split_mode": "tise"}) == "tise_objects"
    assert _split_mode("is_star", {"split_mode": "tise"}) == "tise"
    assert _split_mode("o_is", {}) == "torch_fidelity"  # written before split_mode existed
    old = {"config": {"metrics": {"crops": {"threshold": 0.5, "min_side": 4, "size": 299, "max_per_image": None}}}}
    feats = _Features(RunData("m", {}), old, Path("."))
    assert feats.crop_spec.rounding == "outward" and feats.crop_spec.tag == "crop-v1-t0.5-m4-s299"
    new = {"config": {"metrics": {"crops": {"threshold": 0.5, "min_side": 1, "rounding": "nearest"}}}}
    assert _Features(RunData("m", {}), new, Path(".")).crop_spec.rounding == "nearest"
