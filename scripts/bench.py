"""Speed and scale benchmark: tise_bench's single pass vs the separate tools vs the bare forwards.

    python scripts/bench.py                 # N=200 prompts at 256 px (+ 200 references)
    python scripts/bench.py --n 1000        # the size the cached re-run target is stated for
    python scripts/bench.py --quick         # smoke: N=16 at 64 px, a few minutes at most; no timing claims
    python scripts/bench.py --beyond [...]  # issue 12: the beyond-TISE metrics' extra cost (bench_beyond.py, its
                                            # options: --n, --size, --quick, --backbones, --json, ...)
    python scripts/bench.py --overhead [...]  # issue 13: everything but the forwards, images/s (bench_overhead.py,
                                              # its options: --n, --size, --quick, --workers, --preprocess, --json)
    python scripts/bench.py --fast [...]      # issue 13: backbones.preprocess=fast vs exact on every demo metric
                                              # (bench_fast.py, its options: --quick, --real, --json)
    python scripts/bench.py --cli [...]       # issue 14: cold / cached demo and a cold / cached 256-image run, each
                                              # a fresh CLI process (bench_cli.py: --n, --size, --quick, --skip-demo)

On the SAME seeded synthetic images (``bench_data``) and the SAME backbone instances with random weights
(CLIP ViT-B/32, inception-v3-compat, the YOLO detector at imgsz 640; FLOPs matter here, not accuracy):

(a) ``tise_bench.evaluate`` with the full bag on a fresh cache (backbones built beforehand, as in a
    training loop), then again on the same cache (cached re-run);
(b) the same metrics the way separate tools compute them today (``bench_baseline``);
(c) each backbone's forward alone over pre-decoded, preprocessed tensors at the same batch size —
    the irreducible compute;

and the peak RSS of (a) at N and 4N prompts, each in a fresh subprocess. Prints speed-up (b)/(a),
efficiency sum(c)/(a), cached/first, RSS(4N)/RSS(N), images/s, each with its target and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

import torch  # noqa: E402

from bench_data import load_records, make_dataset  # noqa: E402

TARGETS = {"speedup": 3.0, "efficiency": 0.8, "cached": 0.05, "rss": 1.2}


def backbone_config(detector_arch: str, device: str = "cpu") -> dict[str, Any]:
    """The random backbone set (same architectures as the real defaults except the detector size)."""
    return {
        "random": True,
        "seed": 0,
        "device": device,
        "clip": {"model": "ViT-B-32", "pretrained": "openai"},
        "inception": {},
        "detector": {"arch": detector_arch, "imgsz": 640, "conf": 0.05, "iou": 0.7, "max_det": 100, "max_crops": 8},
    }


def prepare_cache(cache: Path, weights_from: Path | None) -> None:
    """A fresh feature cache that reuses already-written random weights files (not part of any timing)."""
    cache.mkdir(parents=True, exist_ok=True)
    for sub in ("weights", "weights-hashes"):
        if weights_from is not None and (weights_from / sub).is_dir() and not (cache / sub).exists():
            shutil.copytree(weights_from / sub, cache / sub)


def child_result(args: list[str]) -> dict[str, Any]:
    """Run ``python <args>`` (a bench script's ``--child`` mode) in a fresh process; -> its ``RESULT <json>`` line."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def build(bcfg: dict[str, Any], cache: Path) -> dict[str, Any]:
    """Build (or fetch from the process-wide registry) the backbones ``evaluate`` will use with ``cache``."""
    from tise_bench.backbones import build_backbones

    return build_backbones(bcfg, {"clip", "inception", "detector"}, cache)


def run_tise(data: Path, bcfg: dict[str, Any], cache: Path, bs: int) -> tuple[float, Any]:
    """(a): one ``tise_bench.evaluate`` over the full bag; -> (seconds, EvalResult)."""
    import tise_bench

    t = time.perf_counter()
    res = tise_bench.evaluate(
        data / "gen",
        manifest=data / "manifest.jsonl",
        backbones=bcfg,
        cache_dir=cache,
        batch_size=bs,
        device=bcfg["device"],
    )
    return time.perf_counter() - t, res


def forwards_only(
    built: dict[str, Any], paths: list[str], texts: list[str], bs: int, crop_kw: dict[str, Any]
) -> tuple[dict[str, float], int]:
    """(c): each backbone's forward alone on pre-decoded, preprocessed batches; -> ({stage: s}, n_crops)."""
    from PIL import Image

    from tise_bench.features.crops import CropSpec, crop_boxes, make_crop

    imgs = []
    for p in paths:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    out: dict[str, float] = {}
    dets = []
    for name, label in (("clip", "CLIP image @224"), ("inception", "Inception @299"), ("detector", "detector @640")):
        bb = built[name]
        batches = [
            (
                torch.stack([bb.preprocess(im) for im in imgs[i : i + bs]]),
                {
                    k: torch.stack([bb.preprocess_meta(im)[k] for im in imgs[i : i + bs]])
                    for k in bb.preprocess_meta(imgs[i])
                },
            )
            for i in range(0, len(imgs), bs)
        ]
        t = time.perf_counter()
        for x, meta in batches:
            f = bb.forward(x, meta)
            if name == "detector":
                dets.extend(f["detections"])
        out[label] = time.perf_counter() - t
    spec = CropSpec(**crop_kw)
    crops = [
        make_crop(im, box, spec.size) for im, d in zip(imgs, dets) for box in crop_boxes(d, im.width, im.height, spec)
    ]
    inc = built["inception"]
    batches = [torch.stack([inc.preprocess(c) for c in crops[i : i + bs]]) for i in range(0, len(crops), bs)]
    t = time.perf_counter()
    for x in batches:
        inc.forward(x)
    out[f"Inception on {len(crops)} crops @299"] = time.perf_counter() - t
    uniq = sorted(set(texts))
    t = time.perf_counter()
    for i in range(0, len(uniq), 256):
        built["clip"].encode_text(uniq[i : i + 256])
    out[f"CLIP text ({len(uniq)} unique captions)"] = time.perf_counter() - t
    return out, len(crops)


def rss_child(data: Path, detector_arch: str, weights_from: Path, bs: int) -> None:
    """Subprocess body: one (a) run on a fresh cache; prints ``VMHWM_KB <peak resident set in kB>``."""
    with tempfile.TemporaryDirectory(prefix="tise-bench-rss-") as tmp:
        cache = Path(tmp) / "cache"
        prepare_cache(cache, weights_from)
        secs, _ = run_tise(data, backbone_config(detector_arch), cache, bs)
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(f"VMHWM_KB {hwm}\nSECONDS {secs:.3f}", flush=True)


def measure_rss(data: Path, args: argparse.Namespace, weights_from: Path) -> tuple[int, float]:
    """Peak RSS (kB) and wall seconds of (a) on ``data`` in a fresh Python process."""
    cmd = [
        sys.executable,
        __file__,
        "--rss-child",
        str(data),
        "--detector-arch",
        args.detector_arch,
        "--weights-from",
        str(weights_from),
        "--batch-size",
        str(args.batch_size),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    vals = dict(line.split() for line in proc.stdout.splitlines() if line.startswith(("VMHWM_KB", "SECONDS")))
    return int(vals["VMHWM_KB"]), float(vals["SECONDS"])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    others = (
        ("--beyond", "bench_beyond"),
        ("--overhead", "bench_overhead"),
        ("--fast", "bench_fast"),
        ("--cli", "bench_cli"),
    )
    for flag, module in others:
        if flag in sys.argv[1:]:  # another bench, with its own options
            import importlib

            mod = importlib.import_module(module)
            ap = argparse.ArgumentParser(description=mod.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
            ap.add_argument(flag, action="store_true")
            mod.add_arguments(ap)
            mod.run(ap.parse_args())
            return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="prompts (generated images; as many references)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--quick", action="store_true", help="smoke run: N=16 at 64 px, RSS at 16 and 64 prompts")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--detector-arch", default="yolov8n.yaml", help="ultralytics model yaml of the random detector")
    ap.add_argument(
        "--rp-images",
        type=int,
        default=0,
        help="time the baseline's per-image RP on this many images and scale to N (0 = all)",
    )
    ap.add_argument("--rss-n", type=int, default=0, help="N of the RSS pair N / 4N (0 = --n)")
    ap.add_argument("--no-rss", action="store_true", help="skip the two RSS subprocesses")
    ap.add_argument(
        "--only-cached",
        action="store_true",
        help="only (a) and its cached re-run (the cached target at --n 1000 without hours of baselines)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    ap.add_argument("--rss-child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--weights-from", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, args.detector_arch, args.weights_from, args.batch_size)
        return
    if args.quick:
        args.n, args.size = 16, 64
    n, bs = args.n, args.batch_size
    rss_n = args.rss_n or n
    bcfg = backbone_config(args.detector_arch)
    report: dict[str, Any] = {
        "n": n,
        "size": args.size,
        "batch_size": bs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "detector_arch": args.detector_arch,
    }
    with tempfile.TemporaryDirectory(prefix="tise-bench-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        data = tmp / "data"
        make_dataset(data, n, args.size)
        print(
            f"data: {n} prompts, {2 * n} images at {args.size}px ({time.perf_counter() - t0:.1f} s to draw)", flush=True
        )
        cache = tmp / "cache-a"
        built = build(bcfg, cache)  # writes the random weights files; not timed

        # (a) first run on an empty feature cache, then the cached re-run
        t_a, res = run_tise(data, bcfg, cache, bs)
        t_cached, _ = run_tise(data, bcfg, cache, bs)
        values = {k: round(v.value, 4) for k, v in res.metrics.items()}
        print(f"(a) tise_bench.evaluate, full bag ({len(res.metrics)} metrics): {t_a:8.2f} s", flush=True)
        print(f"    cached re-run:                        {t_cached:8.2f} s", flush=True)

        if args.only_cached:
            ratio = t_cached / t_a
            print(
                f"\nimages/s of (a): {2 * n / t_a:.2f}\ncached re-run / first run: {ratio:.4f}  target <= "
                f"{TARGETS['cached']:g}  {verdict(ratio <= TARGETS['cached'])}"
            )
            if args.json is not None:
                report.update(seconds_a=t_a, seconds_cached=t_cached, values_a=values)
                args.json.write_text(json.dumps(report, indent=2, default=float))
            return

        # (b) the separate tools
        from bench_baseline import run_baseline

        records = load_records(data / "manifest.jsonl")
        tb, vb = run_baseline(built, records, data / "gen", data / "ref", tmp / "baseline", bs, args.rp_images)
        t_b = sum(tb.values())
        print("(b) separate tools:")
        for k, v in tb.items():
            print(f"    {k:<62} {v:8.2f} s")
        print(f"    {'total':<62} {t_b:8.2f} s", flush=True)

        # (c) the forwards alone, over what (a) processed: generated + reference images, their crops, texts
        paths = [str(data / "gen" / f"{r['id']}.png") for r in records] + [str(r["reference"]) for r in records]
        texts = [str(r["caption"]) for r in records] + [
            str(r["counter_caption"]) for r in records if r.get("counter_caption")
        ]
        crop_kw = {"threshold": 0.5, "min_side": 4, "size": 299, "max_per_image": bcfg["detector"]["max_crops"]}
        tc, n_crops = forwards_only(built, paths, texts, bs, crop_kw)
        t_c = sum(tc.values())
        print("(c) forwards alone (pre-decoded tensors):")
        for k, v in tc.items():
            print(f"    {k:<62} {v:8.2f} s")
        print(f"    {'total':<62} {t_c:8.2f} s", flush=True)

        rss: dict[str, Any] = {}
        if not args.no_rss:
            data_n = data if rss_n == n else tmp / "data-rss-n"
            if rss_n != n:
                make_dataset(data_n, rss_n, args.size)
            make_dataset(tmp / "data-rss-4n", 4 * rss_n, args.size)
            rss["n"], rss["n_seconds"] = measure_rss(data_n, args, cache)
            rss["4n"], rss["4n_seconds"] = measure_rss(tmp / "data-rss-4n", args, cache)
            rss["N"] = rss_n

    speedup, eff, cached = t_b / t_a, t_c / t_a, t_cached / t_a
    report.update(
        seconds_a=t_a,
        seconds_cached=t_cached,
        seconds_b=t_b,
        seconds_c=t_c,
        passes_b=tb,
        forwards_c=tc,
        n_crops_c=n_crops,
        values_a=values,
        values_b=vb,
        rss=rss,
        load_average=os.getloadavg(),
    )
    print()
    print(f"images/s of (a): {2 * n / t_a:.2f} images/s ({2 * n} images: {n} generated + {n} references)")
    print(
        f"speed-up (b)/(a): {speedup:.2f}x  target >= {TARGETS['speedup']:g}x  {verdict(speedup >= TARGETS['speedup'])}"
    )
    print(
        f"efficiency sum(c)/(a): {eff:.3f}  target >= {TARGETS['efficiency']:g}  {verdict(eff >= TARGETS['efficiency'])}"
    )
    note = "" if n >= 1000 else f"  (target stated for >= 1000 images; N={n})"
    print(
        f"cached re-run / first run: {cached:.4f}  target <= {TARGETS['cached']:g}  "
        f"{verdict(cached <= TARGETS['cached'])}{note}"
    )
    if rss:
        ratio = rss["4n"] / rss["n"]
        report["rss_ratio"] = ratio
        print(
            f"peak RSS 4N/N: {ratio:.3f}  (N={rss_n}: {rss['n'] / 1024:.0f} MiB, 4N={4 * rss_n}: "
            f"{rss['4n'] / 1024:.0f} MiB)  target <= {TARGETS['rss']:g}  {verdict(ratio <= TARGETS['rss'])}"
        )
    else:
        print("peak RSS 4N/N: skipped (--no-rss)")
    la = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
