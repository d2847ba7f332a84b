"""What the beyond-TISE metrics cost on top of the TISE bag (issue 12), measured as the user runs them.

    python scripts/bench_beyond.py                # N=200 prompts at 256 px (+ 200 references)
    python scripts/bench_beyond.py --quick        # smoke: N=24 at 64 px; no timing claims
    python scripts/bench_beyond.py --backbones    # also: each new backbone's build and per-image forward

(1) **Metrics that reuse the bank.** Two fresh Python processes, each on a fresh feature cache (a user's first
run; random-weights files are copied in beforehand, as they are not part of a user's run), each writing a run
folder (so the prompt-bootstrap replicates are computed, as the CLI does):

    A = the TISE bag (the default metrics the bench data supports)
    B = the same + KID, precision, recall, density, coverage (+ the GenEval / CompBench ids that are registered
        and that the bench records support)

Reports A, B and (B − A) / A against the target ≤ 30 %.

(2) **New backbones** (``--backbones``): each network the new metrics add (DINOv2 ViT-L/14, CLIP ViT-L/14@336
for CMMD, CLIP ViT-B/32 for CLIP-FID, ViT-H-14 for HPSv2, ViT-L/14 for the aesthetic head) at its REAL
architecture with random weights (FLOPs are what matter): build seconds and forward milliseconds per image at
batch 8 over pre-decoded images, in this process. These are separate costs by design: a metric that needs its own
network pays its forward once per image, cached afterwards like every feature.
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

for _k, _v in (("HF_HUB_OFFLINE", "1"), ("TISE_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):
    os.environ.setdefault(_k, _v)
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import backbone_config, prepare_cache  # noqa: E402
from bench_data import make_dataset  # noqa: E402

TARGET = 0.30
DISTRIBUTION = ["kid", "precision", "recall", "density", "coverage"]
COMPOSITIONAL = [
    "geneval",
    "geneval_single_object",
    "geneval_two_object",
    "geneval_counting",
    "geneval_colors",
    "geneval_position",
    "geneval_color_attr",
    "compbench_spatial",
    "compbench_numeracy",
]


def child(data: Path, metrics: list[str], weights_from: Path) -> None:
    """Subprocess body: one evaluate() of ``metrics`` (empty: the default bag) on a fresh cache, writing a run
    folder (so bootstrap replicates are drawn, as the CLI does)."""
    import tise_bench

    with tempfile.TemporaryDirectory(prefix="tise-beyond-") as tmp:
        cache = Path(tmp) / "cache"
        prepare_cache(cache, weights_from)
        t = time.perf_counter()
        res = tise_bench.evaluate(
            data / "gen",
            manifest=data / "manifest.jsonl",
            backbones=backbone_config("yolov8n.yaml"),
            cache_dir=cache,
            metrics=metrics or None,
            params={"kid": {"shrink_subset_size": True}} if "kid" in metrics else None,
            write_to=Path(tmp) / "run",
        )
        secs = time.perf_counter() - t
    print("RESULT " + json.dumps({"seconds": secs, "metrics": sorted(res.values())}), flush=True)


def supported(data: Path, ids: list[str]) -> list[str]:
    """The registered ``ids`` whose requirements the bench records meet."""
    from tise_bench.data.manifest import load_manifest
    from tise_bench.registry import all_metrics

    recs = load_manifest(data / "manifest.jsonl")
    params = {"kid": {"shrink_subset_size": True}}
    out = []
    for mid in ids:
        spec = all_metrics().get(mid)
        if spec is not None and spec.requires(recs, None, params.get(mid)) is None:
            out.append(mid)
    return out


def run_child(data: Path, metrics: list[str], weights_from: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(data),
        "--weights-from",
        str(weights_from),
        "--metrics",
        ",".join(metrics),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def backbone_costs(data: Path, n_images: int) -> dict[str, dict[str, float]]:
    """(2): build seconds and forward ms / image of each new backbone at its real architecture, random weights."""
    import torch
    from PIL import Image

    from tise_bench.backbones.registry import all_backbones

    imgs = []
    for p in sorted((data / "gen").glob("*.png"))[:n_images]:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    specs = {
        "dinov2 (ViT-L/14)": ("dinov2", {"model": "vit_large_patch14_dinov2"}),
        "clip_cmmd (ViT-L/14@336)": ("clip_cmmd", {}),
        "clip_fid (ViT-B/32)": ("clip_fid", {}),
        "hps (ViT-H-14)": ("hps", {}),
        "aesthetic (ViT-L-14 + head)": ("aesthetic", {}),
    }
    out = {}
    registered = all_backbones()
    for label, (name, kw) in specs.items():
        if name not in registered:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            try:
                bb = registered[name].cls(random=True, seed=0, cache_dir=tmp, device="cpu", **kw)
            except TypeError as e:  # an option this backbone's constructor lacks
                out[label] = {"error": str(e)}
                continue
            built = time.perf_counter() - t
            x = torch.stack([bb.preprocess(im) for im in imgs])
            metas = [bb.preprocess_meta(im) for im in imgs]
            meta = {k: torch.stack([m[k] for m in metas]) for k in metas[0]} if metas and metas[0] else {}
            t = time.perf_counter()
            with torch.inference_mode():
                bb.forward(x, meta)
            fwd = time.perf_counter() - t
        out[label] = {"build_s": round(built, 2), "forward_ms_per_image": round(1000 * fwd / len(imgs), 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backbones", action="store_true", help="also time the new backbones (real architectures)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--weights-from", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--metrics", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, [m for m in args.metrics.split(",") if m], args.weights_from)
        return
    n, size = (24, 64) if args.quick else (args.n, args.size)
    with tempfile.TemporaryDirectory(prefix="tise-beyond-data-") as tmp:
        data = Path(tmp)
        make_dataset(data, n, size)
        weights = data / "warm"  # random-weights files written once here, copied into each fresh cache
        warm_cache = weights / "cache"
        prepare_cache(warm_cache, None)
        from tise_bench.backbones import build_backbones

        build_backbones(backbone_config("yolov8n.yaml"), {"clip", "inception", "detector"}, warm_cache)
        a = run_child(data, [], warm_cache)
        b = run_child(data, a["metrics"] + supported(data, DISTRIBUTION + COMPOSITIONAL), warm_cache)
        extra = sorted(set(b["metrics"]) - set(a["metrics"]))
        ratio = (b["seconds"] - a["seconds"]) / a["seconds"]
        report: dict[str, Any] = {
            "n": n,
            "size": size,
            "tise_bag_seconds": round(a["seconds"], 2),
            "with_new_metrics_seconds": round(b["seconds"], 2),
            "new_metrics": extra,
            "extra_fraction": round(ratio, 3),
            "target": TARGET,
        }
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"N={n} at {size} px, random weights, fresh process + fresh cache each, run folder written:")
        print(f"  TISE bag ({len(a['metrics'])} metrics):          {a['seconds']:8.2f} s")
        print(f"  + {', '.join(extra)}: {b['seconds']:8.2f} s")
        print(
            f"  extra: {100 * ratio:+.1f} % (target <= {100 * TARGET:.0f} %) {'(quick: no claim)' if args.quick else verdict}"
        )
        if args.backbones:
            costs = backbone_costs(data, 4 if args.quick else 8)
            report["backbones"] = costs
            print("New backbones at their real architectures (random weights), this process:")
            for label, c in costs.items():
                print(f"  {label:40s} {c}")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        shutil.rmtree(weights, ignore_errors=True)


if __name__ == "__main__":
    main()
