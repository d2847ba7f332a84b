"""Issue 14 item 1: what a researcher waits for through the CLI, each run a fresh ``python -m tise_bench`` process.

    python scripts/bench.py --cli            # cold demo, cached demo, a 256-image run cold and cached
    python scripts/bench.py --cli --quick    # smoke: 16 images at 64 px, a 6-prompt demo; no timing claims
    python scripts/bench.py --cli --skip-demo --n 512

* **cold demo**: ``python -m tise_bench backbones=random`` (the README's first command) on an empty cache: the random
  weights are made, the demo images drawn, every feature computed;
* **cached demo**: the same command again, nothing changed;
* **custom run, cold then cached**: ``model=folder data=custom`` on ``--n`` seeded scenes at ``--size`` px with a
  reference each (``bench_data``), the full default bag with bootstrap replicates, on an empty cache, then again.

Wall time of each whole process (start-up, imports, backbone construction or not, features, metrics, replicates,
writing) as the user sees it. Targets (issue 14): cached custom re-run ≤ 5 % of its first run; cached demo ≤ 30 s;
cold demo ≤ 5 min on this 2-core machine when quiet. Timings are only meaningful with nothing else on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_data import make_dataset

TARGETS = {"cached_ratio": 0.05, "cached_demo_s": 30.0, "cold_demo_s": 300.0}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=256, help="prompts of the custom run (as many references)")
    ap.add_argument("--size", type=int, default=256, help="image side of the custom run, pixels")
    ap.add_argument("--quick", action="store_true", help="smoke: 16 images at 64 px, 6-prompt demo; no claims")
    ap.add_argument("--skip-demo", action="store_true", help="only the custom run")
    ap.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in (("HF_HUB_OFFLINE", "1"), ("TISE_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):
        env.setdefault(k, v)
    env.setdefault("YOLO_CONFIG_DIR", str(tmp / "yolo-cfg"))
    env.pop("TISE_CACHE_DIR", None)  # every run names its cache
    return env


def cli(overrides: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one ``python -m tise_bench <overrides>`` process (its output is discarded unless it fails)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tise_bench", "print_table=false", *overrides],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"python -m tise_bench {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return dt


def _verdict(ok: bool, quick: bool) -> str:
    return "(smoke)" if quick else ("PASS" if ok else "FAIL")


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, size = (16, 64) if args.quick else (args.n, args.size)
    report: dict[str, Any] = {"n": n, "size": size, "cpus": os.cpu_count(), "quick": bool(args.quick)}
    with tempfile.TemporaryDirectory(prefix="tise-bench-cli-") as tmp_s:
        tmp = Path(tmp_s)
        env = _env(tmp)
        if not args.skip_demo:
            demo = ["backbones=random", f"paths.cache_dir={tmp / 'demo-cache'}"]
            if args.quick:
                demo += ["data.n_prompts=6", "data.image_size=48"]
            cold = cli([*demo, f"paths.results_dir={tmp / 'demo-res-1'}"], env)
            cached = cli([*demo, f"paths.results_dir={tmp / 'demo-res-2'}"], env)
            report.update(cold_demo_s=round(cold, 2), cached_demo_s=round(cached, 2))
            print(
                f"cold demo:   {cold:8.1f} s  (target ≤ {TARGETS['cold_demo_s']:.0f} s) "
                f"{_verdict(cold <= TARGETS['cold_demo_s'], args.quick)}",
                flush=True,
            )
            print(
                f"cached demo: {cached:8.1f} s  (target ≤ {TARGETS['cached_demo_s']:.0f} s) "
                f"{_verdict(cached <= TARGETS['cached_demo_s'], args.quick)}",
                flush=True,
            )
            shutil.rmtree(tmp / "demo-cache", ignore_errors=True)
        data = tmp / "data"
        manifest = make_dataset(data, n, size)
        custom = [
            "backbones=random",
            "model=folder",
            "model.name=bench",
            f"model.samples_dir={data / 'gen'}",
            "data=custom",
            "data.name=bench",
            "on_unsupported=skip",  # the default bag, less what the manifest cannot support (ref_clip_score)
            f"data.manifest={manifest}",
            f"paths.cache_dir={tmp / 'cache'}",
        ]
        first = cli([*custom, f"paths.results_dir={tmp / 'res-1'}"], env)
        again = cli([*custom, f"paths.results_dir={tmp / 'res-2'}"], env)
        ratio = again / first
        a = json.loads((tmp / "res-1" / "bench" / "bench" / "metrics.json").read_text())
        b = json.loads((tmp / "res-2" / "bench" / "bench" / "metrics.json").read_text())
        same = {k: v.get("value") for k, v in a["metrics"].items()} == {
            k: v.get("value") for k, v in b["metrics"].items()
        }
        forwards = b.get("backbone_forwards", {})
        report.update(
            custom_first_s=round(first, 2),
            custom_cached_s=round(again, 2),
            cached_ratio=round(ratio, 4),
            cached_values_equal=same,
            cached_forwards=forwards,
        )
        print(f"custom run, {n} images at {size} px, cold:  {first:8.1f} s", flush=True)
        print(
            f"custom run, cached re-run:             {again:8.1f} s = {100 * ratio:.1f} % of the first "
            f"(target ≤ {100 * TARGETS['cached_ratio']:.0f} %) {_verdict(ratio <= TARGETS['cached_ratio'], args.quick)}",
            flush=True,
        )
        print(f"cached re-run: same values {same}; backbone forwards {forwards}", flush=True)
        if not same or any(forwards.values()):
            raise SystemExit("the cached re-run changed values or ran forwards: a bug, not a timing")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return report
