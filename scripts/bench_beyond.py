"""What the beyond-TISE metrics cost on top of the TISE bag (issue 12), measured as the user runs them.

    python scripts/bench_beyond.py                # N=200 prompts at 256 px (+ 200 references)
    python scripts/bench_beyond.py --quick        # smoke: N=24 at 64 px; no timing claims
    python scripts/bench_beyond.py --backbones    # also: each new backbone's build and per-image forward
    python scripts/bench.py --beyond [...]        # the same, from the main bench script

Every run below is a fresh Python process on a fresh feature cache (a user's first run; random-weights files are
copied in beforehand, as they are not part of a user's run) that writes a run folder (so the prompt-bootstrap
replicates are computed, as the CLI does). The bench prompts carry GenEval metadata for their scenes, so GenEval's
protocol runs on the same images.

    A = the TISE bag (the default metrics the bench data supports)
    G = the GenEval and CompBench ids alone: the segmenter's pass (detections, masks, colour-crop embeddings) and
        their rules. The segmenter is a separate network (a segmentation model + a CLIP for colour crops), so
        this is reported as a new backbone's cost, like DINOv2's.
    B = A's metrics + KID, precision, recall, density, coverage + the GenEval and CompBench ids, on a fresh cache
        that holds G's segmenter features (and nothing else): the extra cost of the metrics that reuse the bank.

Reports A, B and (B − A) / A against the target ≤ 30 %, and G.

**New backbones** (``--backbones``): each network the new metrics add (DINOv2 ViT-L/14, CLIP ViT-L/14@336
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _k, _v in (("HF_HUB_OFFLINE", "1"), ("TISE_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):
    os.environ.setdefault(_k, _v)
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import backbone_config, child_result, prepare_cache  # noqa: E402
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


def segmenter_config(arch: str, clip_model: str) -> dict[str, Any]:
    """The random GenEval segmenter of the bench: ``arch`` (an ultralytics -seg yaml) + ``clip_model`` for crops."""
    return {"arch": arch, "clip_model": clip_model, "max_det": 8}


def child(data: Path, metrics: list[str], weights_from: Path, cache: Path | None, seg: dict[str, Any]) -> None:
    """Subprocess body: one evaluate() of ``metrics`` (empty: the default bag) on a fresh cache (``cache``: this
    folder, kept; else a temporary one), writing a run folder (so bootstrap replicates are drawn, as the CLI does)."""
    import tise_bench

    with tempfile.TemporaryDirectory(prefix="tise-beyond-") as tmp:
        cache = cache or Path(tmp) / "cache"
        prepare_cache(cache, weights_from)
        bcfg = {**backbone_config("yolov8n.yaml"), "segmenter": seg}
        t = time.perf_counter()
        res = tise_bench.evaluate(
            data / "gen",
            manifest=data / "manifest.jsonl",
            backbones=bcfg,
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


def run_child(
    data: Path, metrics: list[str], weights_from: Path, seg: dict[str, Any], cache: Path | None = None
) -> dict[str, Any]:
    cmd = [
        __file__,
        "--child",
        str(data),
        "--weights-from",
        str(weights_from),
        "--metrics",
        ",".join(metrics),
        "--segmenter",
        json.dumps(seg),
    ]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    return child_result(cmd)


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
    add_arguments(ap)
    args = ap.parse_args()
    run(args)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backbones", action="store_true", help="also time the new backbones (real architectures)")
    ap.add_argument("--segmenter-arch", default="yolov8n-seg.yaml", help="ultralytics -seg yaml (random weights)")
    ap.add_argument(
        "--segmenter-clip",
        default="ViT-L-14",
        help="open_clip architecture of the segmenter's colour-crop CLIP (GenEval's: ViT-L-14)",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--weights-from", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--metrics", default="", help=argparse.SUPPRESS)
    ap.add_argument("--segmenter", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> None:
    if args.child is not None:
        metrics = [m for m in args.metrics.split(",") if m]
        child(args.child, metrics, args.weights_from, args.cache, json.loads(args.segmenter))
        return
    n, size = (24, 64) if args.quick else (args.n, args.size)
    seg = segmenter_config(args.segmenter_arch, args.segmenter_clip)
    with tempfile.TemporaryDirectory(prefix="tise-beyond-data-") as tmp:
        data = Path(tmp)
        make_dataset(data, n, size)
        weights = data / "warm"  # random-weights files written once here, copied into each fresh cache
        warm_cache = weights / "cache"
        prepare_cache(warm_cache, None)
        from tise_bench.backbones import build_backbones

        bcfg = {**backbone_config("yolov8n.yaml"), "segmenter": seg}
        build_backbones(bcfg, {"clip", "inception", "detector", "segmenter"}, warm_cache)
        a = run_child(data, [], warm_cache, seg)
        compositional = supported(data, COMPOSITIONAL)
        seg_cache = data / "seg-cache"  # G's cache: the segmenter's features, B starts from it
        g = run_child(data, compositional, warm_cache, seg, cache=seg_cache) if compositional else None
        b_cache = data / "b-cache"
        if g is not None:
            shutil.copytree(seg_cache, b_cache)
        b = run_child(data, a["metrics"] + supported(data, DISTRIBUTION) + compositional, warm_cache, seg, b_cache)
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
            "segmenter": seg,
            "geneval_compbench_alone_seconds": None if g is None else round(g["seconds"], 2),
        }
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"N={n} at {size} px, random weights, fresh process + fresh cache each, run folder written:")
        print(f"  A  TISE bag ({len(a['metrics'])} metrics):          {a['seconds']:8.2f} s")
        print(f"  B  + {', '.join(extra)}: {b['seconds']:8.2f} s")
        print(
            f"  extra: {100 * ratio:+.1f} % (target <= {100 * TARGET:.0f} %) {'(quick: no claim)' if args.quick else verdict}"
        )
        if g is not None:
            print(
                f"  G  GenEval + CompBench alone, incl. the segmenter's pass ({seg['arch']} + {seg['clip_model']} "
                f"colour crops, random weights, <= {seg['max_det']} boxes per image): {g['seconds']:8.2f} s"
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
