"""GPU throughput bench (issue 13): the TISE bag's images/s on one GPU, its efficiency, and the torchrun path.

    bash scripts/bench_gpu.sh              # on a GPU machine: N=500 prompts + 500 references at 256 px, <= 8 minutes
    bash scripts/bench_gpu.sh --dry        # CPU, CI-sized (N=4 at 64 px, 2 crops): the same code path, no timing claims
    bash scripts/bench_gpu.sh --dry --weights-from CACHE  # ... reusing the random weights files under CACHE/weights

Real architectures with random weights (FLOPs are what matter, and no weights can be downloaded): CLIP ViT-B/32,
torch-fidelity's Inception, YOLOv8x at 640 (``--detector-arch``), object crops capped at 8 per image as in
``backbones=random``. Prints one JSON object:

* ``images_per_s``: (N generated + N references) / seconds of one ``tise_bench.evaluate`` of the full bag on a fresh
  cache, backbones built beforehand (as in a training loop), metrics and all;
* ``efficiency``: the bare forwards (each backbone alone over pre-decoded, preprocessed batches; crops and caption
  embeddings included) / that run (target >= 0.8 on GPU);
* ``cached_rerun_s``: the same call again on the now-warm cache;
* ``fast_vs_exact``: the same full-bag call with ``backbones.preprocess=fast`` (each image uploaded once as uint8;
  CLIP's resize, the letterbox and the crops in torch on the GPU) on its own fresh cache: its images/s and
  efficiency, and each metric's relative difference from the exact run;
* ``torchrun``: the CLI under ``torch.distributed.run`` on every visible GPU (NCCL) against one process, metric by
  metric (relative difference); skipped with one GPU. ``--dry`` runs it with 2 CPU processes (gloo);
* ``input_scaling``: ``scripts/bench_overhead.py`` on this machine's cores (forwards stubbed, backbones on the CPU,
  N=100 + 100 at 256 px, each count in a fresh process): input images/s with 1, 2, 4 and 8 workers (``exact`` and
  ``fast``), the scaling the 2-core CI machine cannot show (``--no-overhead`` skips it; ``--dry``: 1 and 2 workers,
  quick).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _k, _v in (("HF_HUB_OFFLINE", "1"), ("TISE_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):
    os.environ.setdefault(_k, _v)
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench import backbone_config, build, forwards_only, prepare_cache, run_tise  # noqa: E402
from bench_data import load_records, make_dataset  # noqa: E402

TORCHRUN_IDS = "clip_score,clip_rp,is,fid"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_run(data: Path, root: Path, cache: Path, bcfg: dict[str, Any], procs: int) -> dict[str, float]:
    """The CLI on the bench set (``procs`` > 1: under torchrun), on its own copy of ``cache``; -> metric values."""
    det = bcfg["detector"]
    args = [
        "backbones=random",
        f"backbones.device={bcfg['device']}",
        f"backbones.detector.arch={det['arch']}",
        f"backbones.detector.imgsz={det['imgsz']}",
        f"backbones.detector.max_crops={det['max_crops']}",
        "model=folder",
        "model.name=bench",
        f"model.samples_dir={data / 'gen'}",
        "data=custom",
        "data.name=gpu-bench",
        f"data.manifest={data / 'manifest.jsonl'}",
        f"metrics.ids=[{TORCHRUN_IDS}]",
        f"paths.results_dir={root / f'res-{procs}'}",
        "progress=false",
        "print_table=false",
    ]
    run_cache = root / f"cache-{procs}"
    prepare_cache(run_cache, cache)
    launcher = [sys.executable, "-m", "tise_bench"]
    if procs > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=1",
            f"--nproc_per_node={procs}",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            "-m",
            "tise_bench",
        ]
    env = dict(os.environ, TISE_CACHE_DIR=str(run_cache))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    p = subprocess.run(launcher + args, env=env, capture_output=True, text=True, check=False, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(launcher)} failed ({p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    saved = json.loads((root / f"res-{procs}" / "gpu-bench" / "bench" / "metrics.json").read_text())
    if saved.get("world_size", 1) != procs:
        raise RuntimeError(f"expected world_size {procs}, metrics.json says {saved.get('world_size')}")
    return {k: float(v["value"]) for k, v in saved["metrics"].items()}


def _rel(a: float, b: float) -> float | None:
    """|b - a| / |a| (a = 0: the absolute difference); None unless both are finite (NaN where a metric cannot
    run on the dry set)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(b - a) / max(abs(a), 1e-12)


def input_scaling(root: Path, weights_from: Path, dry: bool) -> dict[str, Any]:
    """``scripts/bench_overhead.py`` with 1, 2, 4 and 8 input workers (``--dry``: 1 and 2, quick): images/s per
    worker count and mode, and the scaling from 1 worker."""
    out = root / "overhead.json"
    workers = "1,2" if dry else "1,2,4,8"
    cmd = [sys.executable, str(Path(__file__).with_name("bench_overhead.py")), "--workers", workers]
    cmd += ["--preprocess", "exact,fast", "--json", str(out), "--weights-from", str(weights_from)]
    cmd += ["--quick"] if dry else ["--n", "100"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"bench_overhead failed ({p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    got = json.loads(out.read_text())
    counts = [int(w) for w in workers.split(",")]
    result: dict[str, Any] = {"cores": got["cores"], "n_images": 2 * got["n"], "size": got["size"]}
    for mode, sfx in (("exact", ""), ("fast", "_fast")):
        ips = {w: got["runs" + sfx][str(w)]["images"] / got["runs" + sfx][str(w)]["seconds"] for w in counts}
        result[mode] = {
            "images_per_s": {str(w): round(v, 1) for w, v in ips.items()},
            "scaling_from_1": {str(w): round(v / ips[1], 2) for w, v in ips.items() if w > 1},
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry", action="store_true", help="CPU, N=4 at 64 px: the code path only, no timing claims")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--detector-arch", default="yolov8x.yaml")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-overhead", action="store_true", help="skip the input-scaling runs (input_scaling)")
    ap.add_argument(
        "--weights-from",
        type=Path,
        default=None,
        help="a tise_bench cache whose random weights files (weights/, weights-hashes/) the bench's caches start "
        "from (the same tensors, so the same namespaces): skips drawing and calibrating them again (tests)",
    )
    args = ap.parse_args()
    crops_per_image = 8
    if args.dry:
        args.n, args.size, args.detector_arch, device, imgsz, crops_per_image = 4, 64, "yolov8n.yaml", "cpu", 160, 2
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_gpu: no CUDA device visible; run it on a GPU machine, or with --dry for the CPU check")
        device, imgsz = "cuda", 640
    bcfg = backbone_config(args.detector_arch, device)
    bcfg["detector"].update(imgsz=imgsz, max_crops=crops_per_image)
    report: dict[str, Any] = {
        "dry": args.dry,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "n_prompts": args.n,
        "size": args.size,
        "batch_size": args.batch_size,
        "detector_arch": args.detector_arch,
        "random_weights": True,
    }
    with tempfile.TemporaryDirectory(prefix="tise-gpu-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        make_dataset(data, args.n, args.size)
        recs = load_records(data / "manifest.jsonl")
        paths = [str(data / "gen" / f"{r['id']}.png") for r in recs] + [str(data / r["reference"]) for r in recs]
        cache = root / "cache"
        prepare_cache(cache, args.weights_from)
        built = build(bcfg, cache)  # outside the timing, as in a training loop
        secs, res = run_tise(data, bcfg, cache, args.batch_size)
        t = time.perf_counter()
        run_tise(data, bcfg, cache, args.batch_size)
        report["cached_rerun_s"] = round(time.perf_counter() - t, 3)
        fwd, n_crops = forwards_only(
            built, paths, [str(r["caption"]) for r in recs], args.batch_size, {"max_per_image": crops_per_image}
        )
        report.update(
            full_bag_s=round(secs, 3),
            images=len(paths),
            crops=n_crops,
            images_per_s=round(len(paths) / secs, 2),
            forwards_s={k: round(v, 3) for k, v in fwd.items()},
            efficiency=round(sum(fwd.values()) / secs, 3),
            metrics=sorted(res.values()),
        )
        fcfg = {**bcfg, "preprocess": "fast"}
        fcache = root / "cache-fast"
        # the fast run starts from the exact run's random weights files: the same tensors, so the comparison is of
        # the preprocessing alone (a second calibration of the random detector gives other weights); the builds are
        # outside every timing
        prepare_cache(fcache, cache)
        build(fcfg, fcache)
        fsecs, fres = run_tise(data, fcfg, fcache, args.batch_size)
        ev, fv = res.values(), fres.values()
        report["fast_vs_exact"] = {
            "full_bag_s": round(fsecs, 3),
            "images_per_s": round(len(paths) / fsecs, 2),
            "efficiency": round(sum(fwd.values()) / fsecs, 3),
            "speedup": round(secs / fsecs, 3),
            "rel_diff": {k: _rel(v, fv.get(k, math.nan)) for k, v in ev.items()},
        }
        procs = 2 if args.dry else torch.cuda.device_count()
        if procs < 2:
            report["torchrun"] = {"status": f"skipped: {procs} visible GPU (needs 2 or more)"}
        else:
            one = cli_run(data, root, cache, bcfg, 1)
            many = cli_run(data, root, cache, bcfg, procs)
            rel = {k: abs(many[k] - v) / max(abs(v), 1e-12) for k, v in one.items()}
            report["torchrun"] = {
                "processes": procs,
                "backend": "gloo (CPU)" if device == "cpu" else "nccl",
                "max_rel_diff": max(rel.values()),
                "rel_diff": rel,
                "same_metrics": sorted(one) == sorted(many),
            }
        if not args.no_overhead:
            report["input_scaling"] = input_scaling(root, cache, args.dry)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
