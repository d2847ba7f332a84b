"""``backbones.preprocess=fast`` against ``exact``: every metric of the demo sweep, through the CLI (issue 13).

    python scripts/bench.py --fast                 # the demo sweep, random weights, both modes
    python scripts/bench.py --fast --json out.json
    python scripts/bench.py --fast --quick         # smoke (CI): two models, CLIP metrics only; no claim

Runs ``python -m tise_bench backbones=random`` twice in fresh processes on one new cache: first ``exact``, then
``backbones.preprocess=fast`` (Inception's features are shared: its input is the same tensor in both modes, so
the fast run recomputes CLIP, the detector and the crops only). Then, per model and metric, compares the
``metrics.json`` values: absolute and relative difference ``|fast - exact| / |exact|``. Target (issue 13): CLIP-S,
R-precision and PA within 1e-3 relative, on every demo model. Random weights: the differences say how sensitive
these networks are to one grey level of resampling noise, not what the real networks do (run it with real
weights, ``--real``, where they are available).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_REL = 1e-3
TARGET_METRICS = ("clip_score", "clip_rp", "pa")


def run_cli(cache: Path, results: Path, mode: str, extra: list[str]) -> float:
    """One ``python -m tise_bench`` in a fresh process; -> wall seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TISE_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}
    env.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
    cmd = [sys.executable, "-m", "tise_bench", f"paths.cache_dir={cache}", f"paths.results_dir={results}"]
    cmd += [f"backbones.preprocess={mode}", "progress=false", "print_table=false", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t


def values(results: Path) -> dict[str, dict[str, float]]:
    """model -> metric id -> value, from every ``metrics.json`` under ``results``."""
    out: dict[str, dict[str, float]] = {}
    for f in sorted(results.rglob("metrics.json")):
        if ".hydra" in f.parts:
            continue
        d = json.loads(f.read_text())
        out[str(d.get("model", f.parent.name))] = {
            k: float(v["value"]) for k, v in d["metrics"].items() if isinstance(v.get("value"), (int, float))
        }
    return out


def compare(exact: dict[str, dict[str, float]], fast: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """metric -> {max_abs, max_rel, worst model} over the models both runs scored."""
    out: dict[str, dict[str, Any]] = {}
    for model in sorted(set(exact) & set(fast)):
        for m in sorted(set(exact[model]) & set(fast[model])):
            a, b = exact[model][m], fast[model][m]
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            ab = abs(b - a)
            rel = ab / abs(a) if a != 0 else (0.0 if ab == 0 else math.inf)
            cur = out.setdefault(m, {"max_abs": 0.0, "max_rel": 0.0, "worst": None, "models": 0})
            cur["models"] += 1
            cur["max_abs"] = max(cur["max_abs"], ab)
            if rel >= cur["max_rel"]:
                cur["max_rel"], cur["worst"] = rel, f"{model}: exact {a:.6g}, fast {b:.6g}"
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true", help="smoke: two demo models, CLIP metrics only; no claim")
    ap.add_argument("--real", action="store_true", help="real weights (they must be available locally)")
    ap.add_argument("--json", type=Path, default=None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = [] if args.real else ["backbones=random"]
    if args.quick:
        extra += ["model.suite=[faithful,shuffled]", "metrics.ids=[clip_score,clip_rp,pa]"]
    with tempfile.TemporaryDirectory(prefix="tise-fast-") as tmp:
        cache, res = Path(tmp) / "cache", Path(tmp) / "results"
        secs = {m: run_cli(cache, res / m, m, extra) for m in ("exact", "fast")}
        got = {m: values(res / m) for m in ("exact", "fast")}
    diff = compare(got["exact"], got["fast"])
    claim = "(quick: no claim)" if args.quick else ""
    print(f"backbones.preprocess=fast vs exact, demo sweep {'(real weights)' if args.real else '(random weights)'}:")
    print(f"  exact run {secs['exact']:.1f} s (cold cache), fast run {secs['fast']:.1f} s (Inception features cached)")
    for m, d in diff.items():
        target = m in TARGET_METRICS
        verdict = claim or ("PASS" if d["max_rel"] <= TARGET_REL else "FAIL") if target else ""
        print(
            f"  {m:>18}: max |diff| {d['max_abs']:.3g}, max relative {d['max_rel']:.3g} ({d['worst']})"
            + (f"  target <= {TARGET_REL:g} relative: {verdict}" if target else "")
        )
    report = {
        "random_weights": not args.real,
        "seconds": secs,
        "metrics": diff,
        "target_rel": TARGET_REL,
        "target_met": all(diff[m]["max_rel"] <= TARGET_REL for m in TARGET_METRICS if m in diff),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    run(ap.parse_args())


if __name__ == "__main__":
    main()
