"""Baseline (b) of ``scripts/bench.py``: the TISE bag computed "the way it is done today", one tool per metric.

Each pass reads and decodes the image files itself and runs its own networks, as the separate tools do:

* IS + FID — torch-fidelity ``calculate_metrics(gen_dir, ref_dir, isc=True, fid=True)`` (its own loader);
* CLIP score — decode, encode every image and its caption;
* CLIP R-precision — decode, encode every image, and RE-ENCODE its 100 candidate captions per image
  (TISE's RP code builds the candidate text features inside the per-image loop);
* PA — decode, encode every image and its caption + counter-caption;
* SOA (+ CA from the same detections) — ultralytics ``model.predict`` on the generated files;
* object crops — ``model.predict`` on generated and reference files, crops saved as PNG, then
  torch-fidelity IS + FID on the two crop folders (O-IS / O-FID).

The networks are the same instances (same random weights) as tise_bench's run; model construction is not
timed on either side. Batching is kept (32 images) so the comparison is conservative.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tise_bench.backbones.detector import ultralytics_guard

Timings = dict[str, float]


def _load(path: str | Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _batches(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _normed(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


@torch.inference_mode()
def clip_score_pass(clip: Any, gen: list[str], captions: list[str], bs: int) -> float:
    """CLIP-S = 2.5·max(cos, 0), mean over images; every image and caption decoded and encoded here."""
    scores = []
    for paths, caps in zip(_batches(gen, bs), _batches(captions, bs)):
        img = _normed(clip.net.encode_image(torch.stack([clip.preprocess(_load(p)) for p in paths])))
        txt = _normed(clip.net.encode_text(clip.tokenizer(list(caps))))
        scores.append(2.5 * (img * txt).sum(-1).clamp_min(0))
    return float(torch.cat(scores).mean())


@torch.inference_mode()
def rp_pass(clip: Any, gen: list[str], captions: list[str], bs: int, n_candidates: int = 100, seed: int = 0) -> float:
    """CLIP R-precision, TISE style: per image, the true caption + 99 drawn ones are tokenized and encoded."""
    rng = np.random.default_rng(seed)
    hits = []
    for start in range(0, len(gen), bs):
        paths = gen[start : start + bs]
        img = _normed(clip.net.encode_image(torch.stack([clip.preprocess(_load(p)) for p in paths])))
        for j in range(len(paths)):
            i = start + j
            others = [c for k, c in enumerate(captions) if k != i]
            pick = rng.choice(len(others), size=min(n_candidates - 1, len(others)), replace=False)
            cands = [captions[i]] + [others[k] for k in pick]
            txt = _normed(clip.net.encode_text(clip.tokenizer(cands)))
            sims = txt @ img[j]
            hits.append(bool((sims[1:] < sims[0]).all()))
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


@torch.inference_mode()
def pa_pass(
    clip: Any, gen: list[str], captions: list[str], counters: list[str], bs: int, threshold: float = 0.6
) -> float:
    """PA success rate over images: softmax(s·[cos_true, cos_counter])[0] > threshold."""
    scale = float(clip.net.logit_scale.exp())
    ok = []
    for paths, caps, ctrs in zip(_batches(gen, bs), _batches(captions, bs), _batches(counters, bs)):
        img = _normed(clip.net.encode_image(torch.stack([clip.preprocess(_load(p)) for p in paths])))
        txt = _normed(clip.net.encode_text(clip.tokenizer(list(caps) + list(ctrs)))).view(2, len(paths), -1)
        logits = scale * torch.stack([(img * txt[0]).sum(-1), (img * txt[1]).sum(-1)], dim=-1)
        ok.append(logits.softmax(-1)[:, 0] > threshold)
    return 100.0 * float(torch.cat(ok).float().mean()) if ok else float("nan")


def yolo_wrapper(detector: Any) -> Any:
    """An ultralytics ``YOLO`` object around the detector backbone's (random) torch module."""
    with ultralytics_guard(detector.cache_dir):
        from ultralytics import YOLO

        model = YOLO("yolov8n.yaml", task="detect")
        model.model = detector.net
    return model


def _predict(model: Any, detector: Any, paths: list[str], bs: int) -> Iterator[Any]:
    with ultralytics_guard(detector.cache_dir):  # keep torch's thread count (ultralytics' import sets 1)
        yield from model.predict(
            paths,
            imgsz=detector.imgsz,
            conf=detector.conf,
            iou=detector.iou,
            max_det=detector.max_det,
            batch=bs,
            stream=True,
            verbose=False,
            device="cpu",
        )


def soa_ca_pass(
    model: Any, detector: Any, gen: list[str], records: list[dict[str, Any]], bs: int, threshold: float = 0.5
) -> tuple[float, float]:
    """SOA-I (caption's class detected at score ≥ threshold) and CA (count RMSE) from one predict pass."""
    name_to_id = {v: k for k, v in detector.names.items()}
    correct, rmse = [], []
    for res, rec in zip(_predict(model, detector, gen, bs), records):
        d = res.boxes.data.cpu().numpy()
        d = d[d[:, 4] >= threshold]
        found = {int(c): int((d[:, 5] == c).sum()) for c in np.unique(d[:, 5])}
        correct.append(name_to_id[rec["category"]] in found)
        if rec.get("counts"):
            err = [(found.get(name_to_id[c], 0) - n) ** 2 for c, n in rec["counts"].items()]
            rmse.append(float(np.sqrt(np.mean(err))))
    return float(np.mean(correct)), float(np.mean(rmse)) if rmse else float("nan")


def crops_pass(
    model: Any,
    detector: Any,
    paths: list[str],
    out_dir: Path,
    bs: int,
    threshold: float = 0.5,
    min_side: int = 4,
    max_per_image: int | None = 8,
    size: int = 299,
) -> int:
    """Detect, cut every box at score ≥ threshold (clipped, ≥ min_side px, best max_per_image), save 299² PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, res in enumerate(_predict(model, detector, paths, bs)):
        img = Image.fromarray(res.orig_img[..., ::-1])  # ultralytics keeps BGR
        d = res.boxes.data.cpu().numpy()
        d = d[np.argsort(-d[:, 4], kind="stable")]
        kept = 0
        for x1, y1, x2, y2, score, _ in d:
            if score < threshold or (max_per_image is not None and kept >= max_per_image):
                continue
            a, b = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c, e = min(img.width, int(np.ceil(x2))), min(img.height, int(np.ceil(y2)))
            if c - a < min_side or e - b < min_side:
                continue
            img.crop((a, b, c, e)).resize((size, size), Image.BILINEAR).save(out_dir / f"{i:06d}_{kept:02d}.png")
            kept += 1
            n += 1
    return n


def fidelity(input1: str | Path, input2: str | Path, weights: str | Path, bs: int) -> dict[str, float]:
    """torch-fidelity IS + FID between two image folders on the given inception-v3-compat weights."""
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=str(input1),
        input2=str(input2),
        isc=True,
        fid=True,
        cuda=False,
        batch_size=bs,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights),
        cache=False,
        verbose=False,
    )


def run_baseline(
    built: dict[str, Any],
    records: list[dict[str, Any]],
    gen_dir: Path,
    ref_dir: Path,
    work: Path,
    bs: int,
    rp_images: int = 0,
) -> tuple[Timings, dict[str, float]]:
    """Every pass of the baseline; -> ({pass: seconds}, {metric: value}). ``rp_images`` > 0 times RP on that
    many images and scales its time linearly to all images (its per-image work is identical)."""
    clip, det, inc = built["clip"], built["detector"], built["inception"]
    gen = [str(gen_dir / f"{r['id']}.png") for r in records]
    ref = [str(r["reference"]) for r in records]
    caps = [str(r["caption"]) for r in records]
    t: Timings = {}
    v: dict[str, float] = {}
    t["IS+FID (torch-fidelity)"], m = _timed(lambda: fidelity(gen_dir, ref_dir, inc.weights_path, bs))
    v["is"], v["fid"] = m["inception_score_mean"], m["frechet_inception_distance"]
    t["CLIP score"], v["clip_score"] = _timed(lambda: clip_score_pass(clip, gen, caps, bs))
    k = len(gen) if rp_images <= 0 else min(rp_images, len(gen))
    secs, v["clip_rp"] = _timed(lambda: rp_pass(clip, gen[:k], caps, bs))
    label = "CLIP R-precision" + ("" if k == len(gen) else f" (timed on {k}, scaled x{len(gen) / k:.1f})")
    t[label] = secs * len(gen) / k
    pa = [r for r in records if r.get("counter_caption")]
    t["PA"], v["pa"] = _timed(
        lambda: pa_pass(
            clip,
            [str(gen_dir / f"{r['id']}.png") for r in pa],
            [str(r["caption"]) for r in pa],
            [str(r["counter_caption"]) for r in pa],
            bs,
        )
    )
    model = yolo_wrapper(det)
    t["SOA + CA (detector on gen)"], (v["soa_i"], v["ca"]) = _timed(lambda: soa_ca_pass(model, det, gen, records, bs))

    def crops() -> dict[str, float]:
        n_gen = crops_pass(model, det, gen, work / "crops-gen", bs)
        n_ref = crops_pass(model, det, ref, work / "crops-ref", bs)
        if min(n_gen, n_ref) < 2:
            return {"n_crops": float(n_gen + n_ref)}
        out = fidelity(work / "crops-gen", work / "crops-ref", inc.weights_path, bs)
        return {
            "o_is": out["inception_score_mean"],
            "o_fid": out["frechet_inception_distance"],
            "n_crops": float(n_gen + n_ref),
        }

    t["O-IS+O-FID (detector on gen+ref, save crops, torch-fidelity)"], m = _timed(crops)
    v.update(m)
    return t, v
