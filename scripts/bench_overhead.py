"""Everything but the forwards: the feature pass's input overhead in images/s (issue 13).

    python scripts/bench.py --overhead                # N=200 prompts (+ 200 references) at 256 px, 8 crops/image
    python scripts/bench.py --overhead --quick        # smoke: N=16 at 64 px; no timing claims
    python scripts/bench_overhead.py --workers 1,2    # the same, standalone
    python scripts/bench.py --overhead --preprocess exact,fast   # also backbones.preprocess=fast (torch resizes)

The TISE bag's feature pass (``FeatureBank.images`` over the generated and reference images with the needs of
the default metrics, object crops included, as ``pipeline.extract`` calls it) with every backbone's forward
replaced by a stub that returns outputs of the right shape at no cost: CLIP's and Inception's learn their output
shapes from one real forward before timing; the detector's returns the same 8 boxes (fractions of each image's
size, score 0.9) for every image, so 8 crops per image are cut, resized and preprocessed as usual. What is left is
reading, hashing, decoding, each backbone's preprocessing, crop cutting and the cache writes: the work that must
keep up with an accelerator.

Each configuration runs in a fresh process on a fresh feature cache (a user's first run; random-weights files
are copied in beforehand). ``--workers 1,2`` times the pass with ``num_workers=1`` and ``=2`` (default: 1 and
the default worker count, cores + 1); ``num_workers=0`` is the serial path (no thread pool). JSON keys:
``overhead_images_per_s`` (the most workers timed), ``overhead_images_per_s_1worker``, and ``stages_ms_per_image`` (each stage alone, serial, in this
process: read, hash, decode, preprocess per backbone, crops, cache write). With ``--preprocess exact,fast`` the
same keys with the suffix ``_fast`` give ``backbones.preprocess=fast`` (CLIP, letterbox and crops resized by torch;
on a CPU-only machine that runs in the input workers), and the stages gain ``fast.*`` entries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

for _k, _v in (("HF_HUB_OFFLINE", "1"), ("TISE_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):
    os.environ.setdefault(_k, _v)
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import backbone_config, child_result, prepare_cache  # noqa: E402
from bench_data import make_dataset  # noqa: E402

TARGET_IPS, TARGET_SCALING = 200.0, 1.7
CROPS_PER_IMAGE = 8
#: the detector stub's boxes, as fractions of the image (x1, y1, x2, y2): a 4 x 2 grid of overlapping boxes
STUB_BOXES = [
    (0.05 + 0.22 * (k % 4), 0.1 + 0.4 * (k // 4), 0.3 + 0.22 * (k % 4), 0.5 + 0.4 * (k // 4)) for k in range(8)
]
STUB_FRACTIONS = np.asarray(STUB_BOXES, dtype=np.float32)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def stub_forwards(backbones: dict[str, Any]) -> None:
    """Replace each backbone's ``_forward`` with a zero-cost stub of the same output."""
    import torch

    from tise_bench.backbones.detector import PADDING

    for name, bb in backbones.items():
        if name == "detector":

            def det_stub(batch: torch.Tensor, orig_size: torch.Tensor, _bb: Any = bb) -> dict[str, torch.Tensor]:
                # built in numpy: a torch fill of this size would start torch's OpenMP threads in the forward
                # thread (and their spin-wait), a cost of the stub, not of the pipeline
                wh = orig_size.numpy().astype(np.float32)
                out = np.full((batch.shape[0], _bb.max_det, 6), PADDING, dtype=np.float32)
                k = min(len(STUB_BOXES), _bb.max_det)
                out[:, :k, :4] = STUB_FRACTIONS[None, :k] * np.tile(wh, 2)[:, None, :]
                out[:, :k, 4], out[:, :k, 5] = 0.9, np.arange(k, dtype=np.float32)
                return {"detections": torch.from_numpy(out), "size": torch.from_numpy(wh)}

            bb._forward = det_stub
            continue
        real = bb._forward
        shapes: dict[str, Any] = {}
        zeros: dict[int, dict[str, torch.Tensor]] = {}  # batch size -> outputs, allocated once

        def stub(
            batch: torch.Tensor, _real: Any = real, _shapes: dict = shapes, _zeros: dict = zeros, **meta: Any
        ) -> dict:
            if not _shapes:  # learn the output shapes once, from one real forward (outside the timed pass)
                out = _real(batch[:1], **{k: v[:1] for k, v in meta.items()})
                _shapes.update({k: (tuple(v.shape[1:]), v.dtype) for k, v in out.items()})
            n = int(batch.shape[0])
            if n not in _zeros:  # the same zero outputs every call: no allocation or fill per batch
                _zeros[n] = {k: torch.zeros((n, *s), dtype=d) for k, (s, d) in _shapes.items()}
            return _zeros[n]

        bb._forward = stub


def bag_needs(data: Path) -> tuple[list[str], dict[str, set[str]], bool]:
    """(image paths: generated then references, features per backbone, crops?) of the default bag on ``data``."""
    from tise_bench.evalset import load_eval_set
    from tise_bench.pipeline import _split_needs
    from tise_bench.planning import resolve_metrics

    ids = ["clip_score", "clip_rp", "is", "is_star", "fid", "soa_c", "soa_i", "o_is", "o_fid", "ca", "pa"]
    es = load_eval_set({"name": "bench", "manifest": str(data / "manifest.jsonl")}, data / "unused-cache")
    chosen, _ = resolve_metrics(ids, es, {})
    gen, ref, _, crops = _split_needs(chosen, {})
    needs = {b: gen.get(b, set()) | ref.get(b, set()) for b in set(gen) | set(ref)}
    recs = es.subsets["realism"]
    paths = [str(data / "gen" / f"{r.id}.png") for r in recs] + [str(r.reference) for r in recs]
    return paths, needs, crops


def build_bank(cache: Path, weights_from: Path | None, workers: int, preprocess: str = "exact") -> Any:
    from tise_bench.backbones import build_backbones
    from tise_bench.features.bank import FeatureBank

    prepare_cache(cache, weights_from)
    bcfg = backbone_config("yolov8n.yaml")
    if preprocess != "exact":  # (the key is absent from versions without it: exact runs keep their config)
        bcfg = {**bcfg, "preprocess": preprocess}
    bbs = build_backbones(bcfg, {"clip", "inception", "detector"}, cache)
    stub_forwards(bbs)
    try:
        return FeatureBank(bbs, cache, batch_size=32, num_workers=workers)
    except TypeError:  # a version without parallel input (the serial baseline)
        return FeatureBank(bbs, cache, batch_size=32)


def crop_request() -> Any:
    from tise_bench.features.bank import CropRequest
    from tise_bench.features.crops import CropSpec

    return CropRequest(spec=CropSpec(max_per_image=CROPS_PER_IMAGE), backbones={"inception": ""})


def child(data: Path, weights_from: Path, workers: int, preprocess: str = "exact") -> None:
    """Subprocess body: warm the stubs on 2 images (own cache), then time the full pass on a fresh cache."""
    paths, needs, crops = bag_needs(data)
    with tempfile.TemporaryDirectory(prefix="tise-overhead-") as tmp:
        warm = build_bank(Path(tmp) / "warm", weights_from, workers, preprocess)
        warm.images(paths[:2], needs, crops=crop_request() if crops else None)  # stubs learn their shapes
        bank = build_bank(Path(tmp) / "cache", weights_from, workers, preprocess)
        for name, bb in warm.backbones.items():  # the same (stubbed) instances
            bank.backbones[name] = bb
        t = time.perf_counter()
        feats = bank.images(paths, needs, crops=crop_request() if crops else None)
        secs = time.perf_counter() - t
    n_crops = int(len(feats.features.get("crops.owner", [])))
    out = {"seconds": secs, "images": len(paths), "crops": n_crops, "workers": workers, "preprocess": preprocess}
    print("RESULT " + json.dumps(out), flush=True)


def stages(data: Path, weights_from: Path, n: int, modes: tuple[str, ...] = ("exact",)) -> dict[str, float]:
    """Each stage of the serial pass alone on ``n`` images, ms per image (crops: per image, 8 crops each)."""
    import numpy as np

    from tise_bench import imagefile
    from tise_bench.features.crops import crop_boxes, make_crop, make_crop_tensor

    paths, _, _ = bag_needs(data)
    paths = paths[:n]
    with tempfile.TemporaryDirectory(prefix="tise-stages-") as tmp:
        bank = build_bank(Path(tmp) / "cache", weights_from, 0)
        out: dict[str, float] = {}

        def timed(label: str, fn: Any) -> Any:
            t = time.perf_counter()
            r = fn()
            out[label] = round(1000 * (time.perf_counter() - t) / len(paths), 3)
            return r

        blobs = timed("read", lambda: [imagefile.read_bytes(p) for p in paths])
        timed("hash", lambda: [imagefile.content_hash(b) for b in blobs])
        imgs = timed("decode", lambda: [imagefile.decode_image(b, p) for b, p in zip(blobs, paths)])
        inputs = {}
        for name, bb in bank.backbones.items():
            inputs[name] = timed(f"preprocess.{name}", lambda bb=bb: [bb.preprocess(im) for im in imgs])
        import torch

        for name, xs in inputs.items():  # one batch of each backbone's inputs (the bank collates them ahead)
            timed(f"collate.{name}", lambda xs=xs: [torch.stack(xs[i : i + 32]) for i in range(0, len(xs), 32)])
        spec = crop_request().spec
        inc = bank.backbones["inception"]

        def cut() -> list:
            crops = []
            for im in imgs:
                w, h = im.size
                dets = np.asarray(
                    [[x1 * w, y1 * h, x2 * w, y2 * h, 0.9, k] for k, (x1, y1, x2, y2) in enumerate(STUB_BOXES)]
                )
                crops += [make_crop(im, b, spec.size) for b in crop_boxes(dets, w, h, spec)]
            return crops

        crops = timed("crops.cut", cut)
        timed("crops.preprocess.inception", lambda: [inc.preprocess(c) for c in crops])
        if "fast" in modes:  # backbones.preprocess=fast: the same work in torch on uint8 tensors (CPU here)
            fast = build_bank(Path(tmp) / "fast", weights_from, 0, "fast")
            pix = timed("fast.to_tensor", lambda: [np.array(im) for im in imgs])
            tens = [torch.from_numpy(a).permute(2, 0, 1) for a in pix]
            for name, bb in fast.backbones.items():  # (a CPU detector keeps cv2 under fast: its exact stage)
                if bb.fast:
                    timed(f"fast.preprocess.{name}", lambda bb=bb: [bb.preprocess_tensor(t) for t in tens])

            def cut_fast() -> list:
                out = []
                for im, t in zip(imgs, tens):
                    w, h = im.size
                    dets = np.asarray(
                        [[x1 * w, y1 * h, x2 * w, y2 * h, 0.9, k] for k, (x1, y1, x2, y2) in enumerate(STUB_BOXES)]
                    )
                    out += [make_crop_tensor(t, b, spec.size) for b in crop_boxes(dets, w, h, spec)]
                return out

            timed("fast.crops.cut", cut_fast)
        store = bank.store("stage-bench")
        feats = {"pool3": np.zeros((len(paths), 2048), np.float32), "logits_unbiased": np.zeros((len(paths), 1008))}
        timed("cache_write.inception", lambda: store.put([f"k{i}" for i in range(len(paths))], feats))
    return out


def run_child(data: Path, weights_from: Path, workers: int, preprocess: str = "exact") -> dict[str, Any]:
    args = [__file__, "--child", str(data), "--weights-from", str(weights_from), "--workers", str(workers)]
    return child_result(args + ["--preprocess", preprocess])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=200, help="prompts (generated images; as many references)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="smoke: N=16 at 64 px, no timing claims")
    ap.add_argument("--workers", default="", help="comma-separated num_workers values (default: 1 and all cores)")
    ap.add_argument(
        "--preprocess", default="exact", help="comma-separated backbones.preprocess modes: exact (default), fast"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--weights-from",
        type=Path,
        default=None,
        help="a tise_bench cache whose random weights files the bench's caches start from (skips drawing them)",
    )


def run(args: argparse.Namespace) -> None:
    if args.child is not None:
        child(args.child, args.weights_from, int(args.workers), args.preprocess)
        return
    n, size = (16, 64) if args.quick else (args.n, args.size)
    from tise_bench.features.bank import default_workers

    counts = [int(w) for w in args.workers.split(",") if w] or sorted({1, default_workers()})
    with tempfile.TemporaryDirectory(prefix="tise-overhead-data-") as tmp:
        data = Path(tmp)
        make_dataset(data, n, size)
        weights = data / "warm" / "cache"  # random-weights files, written once, copied into each fresh cache
        prepare_cache(weights, args.weights_from)
        from tise_bench.backbones import build_backbones

        build_backbones(backbone_config("yolov8n.yaml"), {"clip", "inception", "detector"}, weights)
        modes = tuple(m for m in args.preprocess.split(",") if m) or ("exact",)
        all_runs = {m: {w: run_child(data, weights, w, m) for w in counts} for m in modes}
        st = stages(data, weights, min(2 * n, 64), modes)
    report: dict[str, Any] = {"n": n, "size": size, "cores": cores(), "crops_per_image": CROPS_PER_IMAGE}
    for mode, runs in all_runs.items():
        report.update(_summarise(mode, runs, counts, args.quick, f"N={n} prompts + {n} references at {size} px"))
    report["stages_ms_per_image"] = st
    print("  stages alone, serial, ms per image: " + ", ".join(f"{k} {v}" for k, v in st.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _summarise(mode: str, runs: dict[int, dict[str, Any]], counts: list[int], quick: bool, what: str) -> dict[str, Any]:
    """Print one preprocessing mode's runs; -> its report keys (suffix ``_fast`` for the fast mode)."""
    sfx = "" if mode == "exact" else f"_{mode}"
    report: dict[str, Any] = {}
    print(f"Overhead (forwards stubbed), backbones.preprocess={mode}, {what}, fresh process + cache each:")
    for w, r in runs.items():
        ips = r["images"] / r["seconds"]
        key = f"overhead_images_per_s_{w}worker" if w == 1 else f"overhead_images_per_s_{w}workers"
        report[key + sfx] = round(ips, 1)
        print(
            f"  num_workers={w}: {r['images']} images + {r['crops']} crops in {r['seconds']:.2f} s = {ips:.1f} images/s"
        )
    report["runs" + sfx] = {str(w): r for w, r in runs.items()}
    top = runs[max(counts)]
    report["overhead_images_per_s" + sfx] = ips = round(top["images"] / top["seconds"], 1)
    if 1 in runs:
        report["overhead_images_per_s_1worker" + sfx] = round(runs[1]["images"] / runs[1]["seconds"], 1)
    claim = "(quick: no claim)" if quick else ""
    print(
        f"  all cores: {ips:.1f} images/s (target >= {TARGET_IPS:.0f}) {claim or ('PASS' if ips >= TARGET_IPS else 'FAIL')}"
    )
    if 1 in runs and max(counts) > 1:
        scaling = ips / report["overhead_images_per_s_1worker" + sfx]
        report["scaling" + sfx] = round(scaling, 2)
        verdict = claim or ("PASS" if scaling >= TARGET_SCALING else "FAIL")
        print(f"  scaling 1 -> {max(counts)} workers: {scaling:.2f}x (target >= {TARGET_SCALING}x) {verdict}")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    run(ap.parse_args())


if __name__ == "__main__":
    main()
