"""Object detector (ultralytics) for SOA, O-IS/O-FID crops and CA.

Features, fixed-shape per image so they fit the feature cache:

* ``detections`` — float32 ``(max_det, 6)``, rows ``[x1, y1, x2, y2, score, class_id]`` in ORIGINAL image
  pixels (clipped to the image), sorted by score descending; unused rows are all ``-1`` (score ``-1`` =
  padding). Boxes are kept down to a low confidence floor (``conf``, default 0.05), so metrics apply their
  own threshold (TISE: 0.5) without recomputing. Boxes that clip to zero width or height are dropped.
* ``size`` — float32 ``(2,)`` ``[width, height]`` of the decoded image.

The image is letterboxed to ``imgsz`` (:mod:`.letterbox`, ultralytics' arithmetic), scaled to [0, 1] RGB
as ultralytics does, run through the underlying torch module (``model.model`` equivalent) and filtered by
ultralytics' own ``non_max_suppression`` (class-aware, one class per box, as ``model.predict``); batching is
ours. The original size travels as ``preprocess_meta``. Conf, IoU, imgsz and max_det are part of the
cache namespace.

TISE's thresholds (``semantic_object_accuracy/SOA.py``, ``object_fidelity/crop_object.py``): detectron2 Mask
R-CNN R50-FPN 3x with ``SCORE_THRESH_TEST = 0.5`` and detectron2's default ``NMS_THRESH_TEST = 0.5``, which is
per-class NMS. Our defaults (``configs/backbones/real.yaml``): NMS IoU 0.5, per-class (ultralytics
``agnostic=False``), and a 0.05 confidence floor for the cache with 0.5 applied by the metrics. Keeping the low
floor changes nothing at 0.5: greedy NMS only lets a box be suppressed by a higher-scoring box of its class, so
boxes under 0.5 never remove a box at or above 0.5, and the boxes ≥ 0.5 that survive are the same as with a
0.5 threshold before NMS (up to ``max_det`` = 100, detectron2's ``DETECTIONS_PER_IMAGE``). One class per box
matches detectron2 at 0.5 too: its softmax class scores admit at most one class above 0.5 per box. The
detector itself (YOLO, not Mask R-CNN) remains a divergence from TISE.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from . import letterbox as lb
from .base import ImageBackbone, file_sha256, host_reachable, offline_requested, resolve_device, state_dict_sha256
from .registry import BackboneConfig, config_only, register_backbone
from .weights_file import WeightsFile, local_file

log = logging.getLogger(__name__)
PADDING = -1.0  # value of every field of an unused detections row


@contextlib.contextmanager
def ultralytics_guard(cache_dir: str | Path) -> Iterator[None]:
    """Keep ultralytics' process-wide side effects out of the run.

    Its import sets ``OMP_NUM_THREADS=1`` and some of its paths call ``torch.set_num_threads``; both are
    restored. Its settings file goes under the tise cache unless ``YOLO_CONFIG_DIR`` is already set (this
    only takes effect if ultralytics is first imported here).
    """
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(cache_dir).expanduser().resolve() / "ultralytics"))
    if offline_requested():
        os.environ.setdefault("YOLO_OFFLINE", "1")  # else its import probes the network
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def _offline() -> bool:
    if offline_requested() or os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true"):
        return True
    return not host_reachable("github.com")


def detector_weights_dir(cache_dir: str | Path) -> Path:
    """Where bare ultralytics model names (``yolov8x.pt``) are looked up and downloaded to: our own cache."""
    return Path(cache_dir) / "weights" / "ultralytics"


ASSETS_URL = "https://github.com/ultralytics/assets/releases"  # where ultralytics publishes its model files


def asset_url(name: str, cache_dir: str | Path) -> str:
    """The URL ultralytics' ``attempt_download_asset`` downloads model ``name`` from (its default release)."""
    import inspect

    with ultralytics_guard(cache_dir):
        from ultralytics.utils.downloads import GITHUB_ASSETS_REPO, attempt_download_asset

    release = inspect.signature(attempt_download_asset).parameters["release"].default
    return f"https://github.com/{GITHUB_ASSETS_REPO}/releases/download/{release}/{name}"


def ultralytics_weights_file(backbone: str, weights: str, cache_dir: str | Path) -> WeightsFile:
    """The file :func:`find_weights` loads for ``weights`` (a path as given, or a model name in our cache's
    :func:`detector_weights_dir`), no network; ultralytics publishes no sha256 for its assets."""
    key = f"backbones.{backbone}.weights"
    p = Path(weights).expanduser()
    if p.name != weights:  # a path, not a bare model name
        path, found = local_file(weights)
        fix = f"give an existing ultralytics checkpoint (.pt) as {key}"
        return WeightsFile(
            backbone, f"ultralytics model {p.name}", "", (path,), key, None, found, None, False, fix, given=True
        )
    cand = detector_weights_dir(cache_dir) / weights
    fix = (
        f"download {weights} ({ASSETS_URL}) and copy it to {cand} (or pass {key}=/path/to/{weights}); a file in "
        f"the working directory is not used unless named"
    )
    return WeightsFile(
        backbone,
        f"ultralytics model {weights}",
        asset_url(weights, cache_dir),
        (str(cand),),
        key,
        None,
        str(cand) if cand.is_file() else None,
        lambda: str(find_weights(weights, cache_dir)),
        True,
        fix,
    )


def find_weights(weights: str, cache_dir: str | Path) -> Path:
    """A named file (a path: used as given), or an ultralytics model name found in our cache
    (:func:`detector_weights_dir`) or downloaded there by ultralytics if online.

    Never the working directory: ultralytics checkpoints are pickles that run code when loaded, so a
    ``yolov8x.pt`` lying in the folder you run from must not be picked up implicitly."""
    p = Path(weights).expanduser()
    if p.name != weights:  # a path, not a bare model name
        if p.is_file():
            return p
        raise WeightsNotFoundError(
            f"backbones.detector.weights={weights} does not exist. Give an existing ultralytics detection "
            f"checkpoint (.pt) or a model name such as yolov8x.pt."
        )
    wdir = detector_weights_dir(cache_dir)
    cand = wdir / weights
    if cand.is_file():
        return cand
    fix = (
        f"  fix: download {weights} ({ASSETS_URL}) on a machine with "
        f"internet and copy it to {cand} (or pass backbones.detector.weights=/path/to/{weights}); "
        f"or run offline smoke tests with backbones=random. A file in the working directory is not used "
        f"unless named (ultralytics checkpoints are pickles: trusted files only)."
    )
    if _offline():
        raise WeightsNotFoundError(
            f"detector weights '{weights}' not found and the network is unreachable (or TISE_OFFLINE/"
            f"YOLO_OFFLINE is set).\n  looked in: {cand}\n{fix}"
        )
    from ultralytics.utils.downloads import attempt_download_asset

    wdir.mkdir(parents=True, exist_ok=True)
    got = Path(attempt_download_asset(cand))
    if not got.is_file():
        raise WeightsNotFoundError(
            f"ultralytics could not download '{weights}' (not a released asset?).\n  looked in: {cand}\n{fix}"
        )
    return got


def _load_real(path: Path) -> tuple[torch.nn.Module, dict[int, str]]:
    try:
        from ultralytics.nn.tasks import load_checkpoint
    except ImportError:  # ultralytics < 8.3
        from ultralytics.nn.tasks import attempt_load_one_weight as load_checkpoint  # type: ignore[attr-defined, no-redef]
    try:
        net, _ = load_checkpoint(str(path), device=torch.device("cpu"), fuse=True)
    except Exception as e:  # corrupt file or not an ultralytics checkpoint: say which file and what to do
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise WeightsNotFoundError(
            f"could not load detector weights {path}: {type(e).__name__}: {first}\n"
            f"  the file is corrupt (e.g. an interrupted download) or not an ultralytics detection checkpoint.\n"
            f"  fix: delete {path} and download {path.name} again (https://github.com/ultralytics/assets/releases), "
            f"or pass backbones.detector.weights=/path/to/a/good/{path.name}."
        ) from None
    task = getattr(net, "task", "detect")
    if task not in ("detect", "segment"):
        raise ConfigError(
            f"backbones.detector.weights={path} is a {task!r} model; give a detection model (e.g. yolov8x.pt)"
        )
    names = getattr(net, "names", None) or {}
    return net, dict(names) if isinstance(names, dict) else dict(enumerate(names))


@dataclass(frozen=True)
class DetectorConfig(BackboneConfig):
    """``backbones.detector``; ``weights``: an ultralytics model name or a local .pt file."""

    arch: str = "yolov8n.yaml"  # the architecture of the seeded random variant
    imgsz: int = 640  # letterbox side, a multiple of 32
    conf: float = 0.05  # confidence floor kept in the cache; metrics apply their own threshold
    iou: float = 0.5  # per-class NMS IoU (TISE's detectron2); part of the cache namespace
    max_det: int = 100  # rows of the fixed-shape detections array (score -1 = padding)
    imported: str | None = config_only(None)  # a detections JSON: selects ImportedDetections instead
    max_crops: int | None = config_only(None)  # cap on object crops per image (runner.crop_spec reads it)


@register_backbone("detector", config=DetectorConfig)
class DetectorBackbone(ImageBackbone):
    provides = ("detections", "size")
    amp_capable = True

    def __init__(
        self,
        *,
        weights: str | None = None,
        arch: str = DetectorConfig.arch,
        imgsz: int = DetectorConfig.imgsz,
        conf: float = DetectorConfig.conf,
        iou: float = DetectorConfig.iou,
        max_det: int = DetectorConfig.max_det,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__()
        if imgsz <= 0 or imgsz % 32:
            raise ConfigError(f"backbones.detector.imgsz={imgsz}: must be a positive multiple of 32 (e.g. 640)")
        if not (0.0 <= conf <= 1.0 and 0.0 <= iou <= 1.0) or max_det < 1:
            raise ConfigError(
                f"backbones.detector: conf={conf} and iou={iou} must lie in [0, 1], max_det={max_det} must be >= 1"
            )
        self.is_random = random
        self.imgsz, self.conf, self.iou, self.max_det = int(imgsz), float(conf), float(iou), int(max_det)
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir)
        with ultralytics_guard(cache_dir):
            if random:
                from .detector_random import random_detector

                net, self.names = random_detector(arch, seed, self.imgsz, cache_dir)
                self.weights_hash = state_dict_sha256(net)
                self.ident = f"detector-{Path(arch).stem}-random-seed{seed}"
                self.weights_name = f"{Path(arch).name} (random seed {seed})"
                net = net.fuse(verbose=False)  # type: ignore[operator]  # ultralytics DetectionModel.fuse
            else:
                if not weights:
                    raise ConfigError(
                        "backbones.detector.weights is empty: give a model name (yolov8x.pt) or a "
                        ".pt path, or use backbones=random"
                    )
                path = find_weights(weights, cache_dir)
                self.weights_path = path
                net, self.names = _load_real(path)
                self.weights_hash = file_sha256(path, cache_dir)
                self.ident = f"detector-{path.stem}"
                self.weights_name = path.name
        self.net = net.to(self.device).eval()
        self.preproc_version = f"letterbox{self.imgsz}-conf{self.conf:g}-iou{self.iou:g}-max{self.max_det}-v1"

    @property
    def fast_path(self) -> bool:  # type: ignore[override]
        """``backbones.preprocess=fast`` letterboxes in torch on the device, but not on the CPU: there cv2's
        resize (the exact path) is faster than torch's (0.32 vs 1.0 ms for 256 -> 640 px, one thread), so a CPU
        detector keeps its exact preprocessing, namespace and values under ``fast``."""
        return self.device.type != "cpu"

    @classmethod
    def weights_needed(
        cls, *, weights: str | None = None, random: bool = False, cache_dir: str | Path = ".cache", **_: Any
    ) -> list[WeightsFile]:
        """The ultralytics model file the real detector loads (:func:`ultralytics_weights_file`)."""
        if random or not weights:  # no weights: the constructor's ConfigError says what to set
            return []
        return [ultralytics_weights_file("detector", weights, cache_dir)]

    def input_row(self, tensor_path: bool) -> tuple[tuple[int, ...], torch.dtype]:
        return (3, self.imgsz, self.imgsz), torch.uint8

    def preprocess(self, img: Image.Image, out: torch.Tensor | None = None) -> torch.Tensor:
        return lb.letterbox(img, self.imgsz, out)  # uint8 (3, imgsz, imgsz)

    def preprocess_tensor(self, pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return lb.letterbox_tensor(pixels, self.imgsz, out)

    def preprocess_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return lb.letterbox_tensor(pixels, self.imgsz)  # (one geometry for images of one size)

    def preprocess_meta(self, img: Image.Image) -> dict[str, torch.Tensor]:
        return {"orig_size": torch.tensor([img.width, img.height], dtype=torch.int64)}

    def _forward(self, batch: torch.Tensor, orig_size: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if orig_size is None:
            raise ValueError(
                "DetectorBackbone.forward needs meta={'orig_size': (B, 2) [w, h]} stacked from "
                "preprocess_meta; boxes cannot be mapped back to the original images without it"
            )
        with ultralytics_guard(self.cache_dir):
            from ultralytics.utils.nms import non_max_suppression

            x = batch.to(self.device, non_blocking=True).float() / 255.0  # RGB in [0, 1], as ultralytics
            pred = self.net(x)
            kw = {"end2end": True} if getattr(self.net, "end2end", False) else {}
            dets = non_max_suppression(
                pred,
                self.conf,
                self.iou,
                agnostic=False,  # per-class NMS (TISE)
                max_det=self.max_det,
                nc=len(self.names),
                max_time_img=1e9,
                **kw,
            )  # no time limit: it silently drops images
        out = torch.full((len(dets), self.max_det, 6), PADDING, dtype=torch.float32)
        for i, d in enumerate(dets):
            w, h = (int(v) for v in orig_size[i].tolist())
            out[i, :, :] = pack(d[:, :6].float().cpu(), w, h, self.imgsz, self.max_det)
        return {"detections": out, "size": orig_size.to(torch.float32).cpu()}

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            weights=self.weights_name,
            imgsz=self.imgsz,
            conf_floor=self.conf,
            iou=self.iou,
            nms="per-class",
            max_det=self.max_det,
            n_classes=len(self.names),
        )
        if self.is_random:
            d["note"] = "random detector: boxes and classes are noise (smoke tests only)"
        return d


def pack(det: torch.Tensor, w: int, h: int, imgsz: int, max_det: int) -> torch.Tensor:
    """NMS output ``(N, 6)`` in letterbox pixels -> ``(max_det, 6)`` in original pixels, by score, -1 padded."""
    out = torch.full((max_det, 6), PADDING, dtype=torch.float32)
    if det.numel() == 0:
        return out
    det = det.clone()
    det[:, :4] = lb.from_letterbox(det[:, :4], w, h, imgsz)
    keep = (det[:, 2] > det[:, 0]) & (det[:, 3] > det[:, 1])  # boxes that lay entirely in the padding
    det = det[keep]
    det = det[det[:, 4].argsort(descending=True, stable=True)][:max_det]
    out[: len(det)] = det
    return out
