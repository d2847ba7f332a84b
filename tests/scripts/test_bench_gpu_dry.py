"""scripts/bench_gpu.sh cannot rot: its CPU dry mode runs the whole GPU bench's code path (full bag, cached re-run,
bare forwards, fast vs exact preprocessing, torchrun with 2 processes against one, input-worker scaling) and prints the JSON the README's
GPU figures come from."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_mode_prints_every_figure(tmp_path, session_cache) -> None:
    out = tmp_path / "gpu.json"
    env = dict(os.environ, HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    p = subprocess.run(
        # the session's random weights files: the bench does not draw and calibrate Inception again (~20 s)
        [
            "bash",
            str(ROOT / "scripts" / "bench_gpu.sh"),
            "--dry",
            "--json",
            str(out),
            "--weights-from",
            str(session_cache),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    rep = json.loads(out.read_text())
    assert json.loads(p.stdout[p.stdout.index("{") :]) == rep  # printed as well as written
    assert rep["dry"] is True and rep["device"] == "cpu" and rep["random_weights"] is True
    assert rep["images"] == 8 and rep["crops"] > 0 and rep["images_per_s"] > 0
    assert 0 < rep["efficiency"] and rep["cached_rerun_s"] < rep["full_bag_s"]
    assert {"clip_score", "fid", "o_is", "pa"} <= set(rep["metrics"])
    fx = rep["fast_vs_exact"]  # backbones.preprocess=fast: its own run, every metric compared
    assert fx["images_per_s"] > 0 and fx["efficiency"] > 0 and set(fx["rel_diff"]) == set(rep["metrics"])
    finite = {k: v for k, v in fx["rel_diff"].items() if v is not None}  # None: NaN on the dry set in both modes
    assert {"clip_score", "fid", "pa"} <= set(finite) and all(0 <= v < float("inf") for v in finite.values()), fx
    tr = rep["torchrun"]
    assert tr["processes"] == 2 and tr["same_metrics"] and tr["max_rel_diff"] < 1e-5, tr
    sc = rep["input_scaling"]  # bench_overhead on this machine's cores, 1 and 2 workers in the dry mode
    for mode in ("exact", "fast"):
        assert set(sc[mode]["images_per_s"]) == {"1", "2"} and all(v > 0 for v in sc[mode]["images_per_s"].values())
        assert set(sc[mode]["scaling_from_1"]) == {"2"}
