"""Instance segmenter + CLIP colour crops for the GenEval protocol (:mod:`tise_bench.metrics.geneval`).

GenEval (djghosh13/geneval ``evaluation/evaluate_images.py``) runs mmdet's Mask2Former (Swin-S, COCO) and, for
colour prompts, classifies each found object with CLIP ViT-L-14 (open_clip, ``pretrained="openai"``) zero-shot
over ten colours. Its ``ImageCrops`` makes the colour input of one object as:

1. ``Image.composite(image, blank, Image.fromarray(mask))``: the object's instance mask (full image size) keeps
   the object's pixels and greys out the rest with ``blank = Image.new("RGB", size, "#999")`` (option ``bgcolor``);
   without a mask (a box-only detector) the image is used as it is;
2. ``.crop(box[:4])``: cut to the float box (Pillow rounds each coordinate: ``map(int, map(round, box))``);
3. ``transform``: open_clip's preprocessing of the CLIP model (ViT-L-14/openai: shortest side to 224 bicubic,
   centre crop 224, OpenAI mean/std), then ``encode_image`` and L2 normalisation (clip_benchmark's
   ``run_classification``).

A crop needs the decoded image and the full-resolution mask, so this backbone does it in the feature pass: one
forward = ultralytics segmentation model -> boxes + masks -> masked crops -> CLIP embeddings. Cached per image
(fixed shapes, no masks stored: a reduced mask would not reproduce the crop, and nothing else reads them):

* ``detections`` float32 ``(max_det, 6)`` ``[x1, y1, x2, y2, score, class_id]`` in original pixels, score-sorted,
  padding rows all ``-1``; ``class_id`` indexes the 80 COCO classes (``tise_bench.text.coco_classes``);
* ``crop_image`` float32 ``(max_det, D)``: the L2-normalised CLIP embedding of the row's masked crop, zeros where
  no crop was made; ``crop`` ``(max_det,)``: 1 where a crop was embedded, 2 where it was also masked, 0 if not,
  -1 where the box rounds to an empty crop (GenEval's transform would fail on it; the metric gives it no colour);
* ``size`` ``[width, height]``.

Crops are made for the rows GenEval can ask a colour of: every kept box (score > ``conf``, GenEval's 0.3 by
default) among the ``crop_max_per_class`` (GenEval's MAX_OBJECTS = 16) highest-scoring of its class.

Detection (the same route as :mod:`.detector`): letterbox to ``imgsz``, the torch module, ultralytics'
``non_max_suppression`` (per class, ``iou`` 0.7 = ultralytics' predict default; Mask2Former has no NMS), masks
by ultralytics' ``process_mask(..., upsample=True)`` at letterbox size, then ``scale_masks`` to the original
size and ``> 0.5``; boxes whose mask is empty are dropped (as ultralytics' segmentation predictor). A detection
model (no mask head) is accepted: its crops are not greyed, as GenEval does when ``segm`` is None.

Differences from GenEval, recorded in ``describe()`` and the metrics' extras: the segmenter is an ultralytics
model, not Mask2Former (exact detections come only from the same network); CLIP runs in fp32 (clip_benchmark's
classifier runs under CUDA autocast). ``backbones=random``: a seeded random ``yolov8n-seg`` (class head
calibrated as the random detector) and ``clip_model`` (ViT-L-14) with seeded random weights and the OpenAI
preprocessing of its input size — smoke tests only (tests pick a small ``clip_model``).
Real weights: ``backbones.segmenter.weights`` (an ultralytics model name looked up in the tise cache, or a named
file; never the working directory) and open_clip's cached ``clip_model``/``clip_pretrained`` or ``clip_weights``.

Exact GenEval detections: ``backbones.segmenter.imported=<file>`` (:class:`ImportedSegmenter`) takes GenEval's own
Mask2Former boxes and masks from a file (format in :class:`~.imported_detections.ImportedSegments`) instead of a
network; the masked crops and CLIP are this module's, and the protocol names the file's detector "(imported)".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError
from ..text.coco_classes import COCO_CLASSES
from . import letterbox as lb
from .base import ImageBackbone, file_sha256, resolve_device, state_dict_sha256
from .detector import PADDING, _load_real, find_weights, ultralytics_guard, ultralytics_weights_file
from .imported_detections import SEGMENTS_FORMAT, ImportedSegments
from .registry import BackboneConfig, BuildContext, config_only, register_backbone, register_variant
from .weights_file import WeightsFile

log = logging.getLogger(__name__)
VERSION = "v1"  # bump when the crop or mask code changes the features
EMPTY_CROP = -1.0  # ``crop`` flag of a row whose rounded box is empty (no embedding; its colour is "none")


def masked_crop(
    img: Image.Image, box: tuple[float, float, float, float], mask: np.ndarray | None, bg: str
) -> Image.Image:
    """GenEval's ``ImageCrops.__getitem__``: grey (``bg``) outside the instance mask, then crop to the float box."""
    image = img.convert("RGB")
    if mask is not None:
        if tuple(mask.shape) != (image.height, image.width):
            raise ValueError(f"mask shape {mask.shape} != image (h, w) {(image.height, image.width)}")
        blank = image.copy() if bg == "original" else Image.new("RGB", image.size, color=bg)
        image = Image.composite(image, blank, Image.fromarray(np.asarray(mask, dtype=bool)))
    x1, y1, x2, y2 = (float(v) for v in box)
    return image.crop((x1, y1, x2, y2))  # Pillow rounds each coordinate, as for GenEval's float box


def crop_rows(dets: np.ndarray, conf: float, per_class: int) -> list[int]:
    """Rows of score-sorted ``dets`` that get a colour crop: score > conf, the first ``per_class`` of each class."""
    seen: dict[int, int] = {}
    out = []
    for i, (score, cls) in enumerate(zip(dets[:, 4], dets[:, 5])):
        if score <= conf:
            continue
        c = int(cls)
        if seen.get(c, 0) < per_class:
            seen[c] = seen.get(c, 0) + 1
            out.append(i)
    return out


@dataclass(frozen=True)
class SegmenterConfig(BackboneConfig):
    """``backbones.segmenter``; ``weights``: an ultralytics segmentation model name (yolov8x-seg.pt) or a .pt file."""

    arch: str = "yolov8n-seg.yaml"  # the architecture of the seeded random variant
    imgsz: int = 640  # letterbox side, a multiple of 32
    conf: float = 0.3  # GenEval's THRESHOLD: boxes at or under it are never used (counting: 0.9)
    iou: float = 0.7  # per-class NMS IoU (ultralytics' predict default; Mask2Former has none)
    max_det: int = 100  # rows of the fixed-shape arrays (Mask2Former: 100 queries)
    crop_max_per_class: int = 16  # GenEval's MAX_OBJECTS: colour crops for the top boxes of each class
    bgcolor: str = "#999"  # GenEval's default background of the masked crop ("original": no greying)
    clip_model: str = "ViT-L-14"  # GenEval: open_clip ViT-L-14 ...
    clip_pretrained: str = "openai"  # ... pretrained="openai"
    clip_weights: str | None = None  # a local open_clip checkpoint for clip_model instead of the tag's download
    imported: str | None = config_only(None)  # GenEval's own detections + masks (a segments file): ImportedSegmenter


@register_backbone("segmenter", config=SegmenterConfig)
class SegmenterBackbone(ImageBackbone):
    provides = ("detections", "crop_image", "crop", "size")

    def __init__(
        self,
        *,
        weights: str | None = None,
        arch: str = SegmenterConfig.arch,
        imgsz: int = SegmenterConfig.imgsz,
        conf: float = SegmenterConfig.conf,
        iou: float = SegmenterConfig.iou,
        max_det: int = SegmenterConfig.max_det,
        crop_max_per_class: int = SegmenterConfig.crop_max_per_class,
        bgcolor: str = SegmenterConfig.bgcolor,
        clip_model: str = SegmenterConfig.clip_model,
        clip_pretrained: str = SegmenterConfig.clip_pretrained,
        clip_weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__()
        if imgsz <= 0 or imgsz % 32:
            raise ConfigError(f"backbones.segmenter.imgsz={imgsz}: must be a positive multiple of 32 (e.g. 640)")
        _check_settings(conf, iou, max_det, crop_max_per_class, bgcolor)
        self.imgsz, self.conf, self.iou, self.max_det = int(imgsz), float(conf), float(iou), int(max_det)
        self.per_class, self.bgcolor = int(crop_max_per_class), str(bgcolor)
        self.is_random = bool(random and not weights)
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir)
        with ultralytics_guard(cache_dir):
            if self.is_random:
                from .detector_random import random_detector

                net, names = random_detector(arch, seed, self.imgsz, cache_dir)
                det_hash = state_dict_sha256(net)
                det_ident = f"{Path(arch).stem}-random-seed{seed}"
                self.weights_name = f"{Path(arch).name} (random seed {seed})"
                net = net.fuse(verbose=False)  # type: ignore[operator]
            else:
                if not weights:
                    raise ConfigError(
                        "backbones.segmenter.weights is empty: give an ultralytics segmentation model name "
                        "(yolov8x-seg.pt) or a .pt path, or use backbones=random"
                    )
                path = find_weights(weights, cache_dir)
                net, names = _load_real(path)
                det_hash = file_sha256(path, cache_dir)
                det_ident = path.stem
                self.weights_name = path.name
        self.has_masks = getattr(net, "task", "detect") == "segment" or "seg" in type(net).__name__.lower()
        self.class_map = _coco_index(names)
        self.net = net.to(self.device).eval()
        self._init_clip(clip_model, clip_pretrained, clip_weights, seed, cache_dir)
        self.weights_hash = state_hash(det_hash, self.clip_hash)
        self.ident = f"segmenter-{det_ident}-{self.clip_ident}"
        self.preproc_version = (
            f"letterbox{self.imgsz}-conf{self.conf:g}-iou{self.iou:g}-max{self.max_det}-k{self.per_class}"
            f"-bg{self.bgcolor.lstrip('#')}-{self.clip_preproc}-{VERSION}"
        )
        self.n_forward_texts = 0

    @classmethod
    def weights_needed(
        cls,
        *,
        weights: str | None = None,
        clip_model: str = SegmenterConfig.clip_model,
        clip_pretrained: str = SegmenterConfig.clip_pretrained,
        clip_weights: str | None = None,
        random: bool = False,
        cache_dir: str | Path = ".cache",
        **_: Any,
    ) -> list[WeightsFile]:
        """The ultralytics segmentation model (:func:`find_weights`) and the crops' CLIP checkpoint (as
        :class:`ClipBackbone` finds it); none when random (a given ``weights`` makes both real, as ``__init__``).
        The imported variant has no ``weights``: its CLIP only."""
        from .clip import clip_weights_file

        if random and not weights:
            return []
        seg = [ultralytics_weights_file("segmenter", weights, cache_dir)] if weights else []
        return [
            *seg,
            clip_weights_file("segmenter", clip_model, clip_pretrained, clip_weights, "backbones.segmenter.clip_"),
        ]

    def _init_clip(self, model: str, pretrained: str, weights: str | None, seed: int, cache_dir: str | Path) -> None:
        import open_clip

        if self.is_random:
            from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

            from .hps import random_open_clip

            try:
                net = random_open_clip(model, seed, quick_gelu=pretrained == "openai")  # the openai tags are QuickGELU
            except ConfigError as e:
                raise ConfigError(f"backbones.segmenter.clip_model: {e}") from None
            size = open_clip.get_model_config(model)["vision_cfg"]["image_size"]
            size = int(size[0] if isinstance(size, (tuple, list)) else size)
            self._clip_pre = open_clip.image_transform(size, False, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
            self.clip_hash = state_dict_sha256(net)
            self.clip_ident = f"{model}-random-seed{seed}"
            self.clip_name = f"open_clip {model} (RANDOM WEIGHTS)"
            self.clip_preproc = f"clip{size}-openai"
            self.tokenizer = open_clip.get_tokenizer(model)
            log.warning("backbones.segmenter: RANDOM-WEIGHTS segmenter and %s CLIP (smoke tests only)", model)
        else:
            from .clip import ClipBackbone

            clip = ClipBackbone(
                model=model,
                pretrained=pretrained,
                weights=weights,
                cache_dir=cache_dir,
                device="cpu",
                keys="backbones.segmenter.clip_",
            )
            net, self._clip_pre, self.tokenizer = clip.net, clip.preprocess, clip.tokenizer
            self.clip_hash, self.clip_preproc = clip.weights_hash, clip.preproc_version
            self.clip_ident = f"{model}-{Path(weights).stem if weights else pretrained}"
            self.clip_name = f"open_clip {model}/{Path(weights).name if weights else pretrained}"
        self.clip = net.to(self.device).eval()
        self.context_length = int(getattr(self.tokenizer, "context_length", 77) or 77)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """The decoded image itself (uint8 (3, H, W)): crops are cut from it in :meth:`_forward`."""
        return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        imgs = [Image.fromarray(b.permute(1, 2, 0).cpu().numpy()) for b in batch]
        dets, masks = self.detect(imgs)
        return self._embed_crops(imgs, dets, lambda i, r: None if masks[i] is None else masks[i][r])  # type: ignore[index]

    def _embed_crops(
        self, imgs: list[Image.Image], dets: list[np.ndarray], mask_of: Callable[[int, int], np.ndarray | None]
    ) -> dict[str, torch.Tensor]:
        """The features of images with their detection rows: GenEval's masked crop of every crop row (the mask
        of image ``i``, row ``r`` from ``mask_of(i, r)``, None = no greying) through CLIP."""
        dim = int(self.clip.visual.output_dim)
        emb = torch.zeros((len(imgs), self.max_det, dim), dtype=torch.float32)
        flag = torch.zeros((len(imgs), self.max_det), dtype=torch.float32)
        crops, where = [], []
        for i, (img, d) in enumerate(zip(imgs, dets)):
            for r in crop_rows(d, self.conf, self.per_class):
                m = mask_of(i, r)
                crop = masked_crop(img, tuple(d[r, :4]), m, self.bgcolor)
                if crop.width == 0 or crop.height == 0:  # a sub-pixel box rounds to nothing: no colour (GenEval fails)
                    flag[i, r] = EMPTY_CROP
                    continue
                crops.append(self._clip_pre(crop))
                where.append((i, r))
                flag[i, r] = 1.0 if m is None else 2.0
        for s in range(0, len(crops), 64):
            x = torch.stack(crops[s : s + 64]).to(self.device)
            e = torch.nn.functional.normalize(self.clip.encode_image(x).float(), dim=-1).cpu()
            for (i, r), row in zip(where[s : s + 64], e):
                emb[i, r] = row
        size = torch.tensor([[im.width, im.height] for im in imgs], dtype=torch.float32)
        return {"detections": torch.from_numpy(np.stack(dets)), "crop_image": emb, "crop": flag, "size": size}

    @torch.inference_mode()
    def detect(self, imgs: list[Image.Image]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """-> per image ``(max_det, 6)`` rows (original pixels, COCO-80 ids, score-sorted, -1 padded) and the
        matching ``(max_det, H, W)`` boolean instance masks (None for a detection model)."""
        with ultralytics_guard(self.cache_dir):
            from ultralytics.utils import ops
            from ultralytics.utils.nms import non_max_suppression

            x = torch.stack([lb.letterbox(im, self.imgsz) for im in imgs]).to(self.device).float() / 255.0
            out = self.net(x)
            head = out[0] if isinstance(out, (tuple, list)) else out
            proto = None
            if isinstance(head, (tuple, list)):
                head, proto = head[0], head[1]
            found = non_max_suppression(
                head,
                self.conf,
                self.iou,
                agnostic=False,
                max_det=self.max_det,
                nc=len(self.class_map),
                max_time_img=1e9,
            )
        rows: list[np.ndarray] = []
        masks: list[np.ndarray | None] = []
        for i, (im, d) in enumerate(zip(imgs, found)):
            w, h = im.width, im.height
            m = None
            if self.has_masks and proto is not None:
                lm = ops.process_mask(proto[i], d[:, 6:], d[:, :4], (self.imgsz, self.imgsz), upsample=True)
                keep = lm.amax((-2, -1)) > 0  # as ultralytics' SegmentationPredictor
                d, lm = d[keep], lm[keep]
                m = (ops.scale_masks(lm[None].float(), (h, w))[0] > 0.5).cpu().numpy() if len(d) else None
            d = d[:, :6].float().cpu().clone()
            d[:, :4] = lb.from_letterbox(d[:, :4], w, h, self.imgsz)
            d[:, 5] = torch.as_tensor([self.class_map[int(c)] for c in d[:, 5].tolist()], dtype=torch.float32)
            ok = ((d[:, 2] > d[:, 0]) & (d[:, 3] > d[:, 1])).numpy()
            order = np.argsort(-d[:, 4].numpy(), kind="stable")
            order = order[ok[order]][: self.max_det]
            out_rows = np.full((self.max_det, 6), PADDING, dtype=np.float32)
            out_rows[: len(order)] = d.numpy()[order]
            rows.append(out_rows)
            if self.has_masks:
                full = np.zeros((self.max_det, h, w), dtype=bool)
                if m is not None:
                    full[: len(order)] = m[order]
                masks.append(full)
            else:
                masks.append(None)
        return rows, masks

    def n_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + 2 if hasattr(self.tokenizer, "encode") else 0

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> (L2-normalised CLIP text embeddings of the colour templates, truncated flags)."""
        truncated = np.array([self.n_tokens(t) > self.context_length for t in texts], dtype=bool)
        self.n_forward_texts += len(texts)
        emb = self.clip.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy(), truncated

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            weights=self.weights_name,
            masks=self.has_masks,
            imgsz=self.imgsz,
            conf_floor=self.conf,
            iou=self.iou,
            nms="per-class",
            max_det=self.max_det,
            crop_max_per_class=self.per_class,
            bgcolor=self.bgcolor,
            clip=self.clip_name,
            crop="GenEval ImageCrops: composite(image, bgcolor, mask), crop(box) with Pillow rounding, CLIP transform",
            reference="djghosh13/geneval evaluation/evaluate_images.py (GenEval: Mask2Former + open_clip ViT-L-14/openai)",
        )
        if self.is_random:
            d["note"] = "random segmenter and tiny random CLIP: boxes, masks and colours are noise (smoke tests only)"
        return d


def _imported_kwargs(config: SegmenterConfig, ctx: BuildContext) -> dict[str, Any]:
    """The file replaces the segmentation network; the crops' CLIP still runs (tiny and random under
    backbones=random, as for the segmenter)."""
    return dict(
        path=str(config.imported),
        max_det=config.max_det,
        conf=config.conf,
        crop_max_per_class=config.crop_max_per_class,
        bgcolor=config.bgcolor,
        clip_model=config.clip_model,
        clip_pretrained=config.clip_pretrained,
        clip_weights=config.clip_weights,
        random=ctx.random,
        seed=ctx.seed,
        cache_dir=ctx.cache_dir,
        device=ctx.device,
    )


@register_variant("segmenter", selector="imported", kwargs=_imported_kwargs)
class ImportedSegmenter(SegmenterBackbone):
    """``backbones.segmenter.imported=<file>``: GenEval's own detections and masks (mmdet Mask2Former's
    ``result[0]`` boxes and ``result[1]`` masks as COCO RLE, format :data:`SEGMENTS_FORMAT`, described in
    :class:`~.imported_detections.ImportedSegments`) instead of an ultralytics network, so the GenEval metrics
    run on exactly GenEval's detections. The colour crops are made and embedded as by the segmenter
    (:meth:`SegmenterBackbone._embed_crops`, masks decoded from the file only for the crop rows); the keys
    ``imgsz``, ``iou``, ``arch`` and ``weights`` are unused; no score floor is applied to the stored rows
    (the metrics apply GenEval's 0.3 / 0.9), ``conf`` only bounds the rows that get a colour crop."""

    needs_source = True  # the FeatureBank passes each image's path: detections are looked up by file

    def __init__(
        self,
        *,
        path: str | Path,
        max_det: int = SegmenterConfig.max_det,
        conf: float = SegmenterConfig.conf,
        crop_max_per_class: int = SegmenterConfig.crop_max_per_class,
        bgcolor: str = SegmenterConfig.bgcolor,
        clip_model: str = SegmenterConfig.clip_model,
        clip_pretrained: str = SegmenterConfig.clip_pretrained,
        clip_weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        ImageBackbone.__init__(self)
        _check_settings(conf, SegmenterConfig.iou, max_det, crop_max_per_class, bgcolor)
        self.conf, self.max_det, self.per_class = float(conf), int(max_det), int(crop_max_per_class)
        self.bgcolor, self.imgsz, self.iou = str(bgcolor), 0, 0.0  # imgsz / iou: no network (not in describe())
        self.table = ImportedSegments(path=path, max_det=max_det, cache_dir=cache_dir)
        self.is_random = bool(random)  # the CLIP only: the detections are the file's
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir)
        self.has_masks = self.table.has_masks
        self.detector = f"{self.table.detector} (imported)"
        self.weights_name = self.detector
        self._init_clip(clip_model, clip_pretrained, clip_weights, seed, cache_dir)
        self.weights_hash = state_hash(self.table.weights_hash, self.clip_hash)  # sha256 of the file + CLIP
        self.ident = f"segmenter-imported-{self.table.path.stem}-{self.clip_ident}"
        self.preproc_version = (
            f"imported-max{self.max_det}-conf{self.conf:g}-k{self.per_class}-bg{self.bgcolor.lstrip('#')}"
            f"-{self.clip_preproc}-{VERSION}"
        )
        self.n_forward_texts = 0

    def preprocess_meta(self, img: Image.Image) -> dict[str, torch.Tensor]:
        return self.table.preprocess_meta(img)  # raises: the caller must pass the image's path

    def preprocess_meta_for(self, path: str, img: Image.Image) -> dict[str, torch.Tensor]:
        rows, index = self.table.entry(str(path), img.width, img.height)
        return {"dets": torch.from_numpy(rows), "entry": torch.tensor(index, dtype=torch.int64)}

    def _forward(  # type: ignore[override]
        self, batch: torch.Tensor, dets: torch.Tensor | None = None, entry: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if dets is None or entry is None:
            raise ValueError("ImportedSegmenter.forward needs meta from preprocess_meta_for (dets, entry)")
        imgs = [Image.fromarray(b.permute(1, 2, 0).cpu().numpy()) for b in batch]
        rows = [d.cpu().numpy().astype(np.float32) for d in dets]
        idx = [int(e) for e in entry.reshape(-1).tolist()]
        return self._embed_crops(imgs, rows, lambda i, r: self.table.mask(idx[i], r, imgs[i].width, imgs[i].height))

    def detect(self, imgs: list[Image.Image]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        raise ConfigError("backbones.segmenter.imported: no network to run; detections come from the file by path")

    def describe(self) -> dict[str, object]:
        d = super().describe()
        for k in ("imgsz", "iou", "nms"):
            d.pop(k, None)
        d.update(
            imported=str(self.table.path),
            imported_sha256=self.table.weights_hash,
            detector=self.table.detector,
            format=SEGMENTS_FORMAT,
            on_missing=self.table.on_missing,
            n_images_listed=len(self.table._table),
            n_missing=self.table.n_missing,
            conf_floor=None,
            crop_floor=self.conf,
            note="detections and masks imported from a file: no segmentation network ran"
            + ("; tiny RANDOM CLIP: colours are noise (smoke tests only)" if self.is_random else ""),
        )
        return d


def _check_settings(conf: float, iou: float, max_det: int, per_class: int, bgcolor: str) -> None:
    if not (0.0 <= conf <= 1.0 and 0.0 <= iou <= 1.0) or max_det < 1 or per_class < 1:
        raise ConfigError(
            f"backbones.segmenter: conf={conf}, iou={iou} must lie in [0, 1]; max_det={max_det} and "
            f"crop_max_per_class={per_class} must be >= 1"
        )
    try:
        Image.new("RGB", (1, 1), color=bgcolor) if bgcolor != "original" else None
    except ValueError:
        raise ConfigError(f"backbones.segmenter.bgcolor={bgcolor!r}: a PIL colour (#999) or 'original'") from None


def state_hash(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _coco_index(names: dict[int, str]) -> dict[int, int]:
    """The model's class ids -> indices of the 80 COCO classes (GenEval's object_names.txt order)."""
    index = {n: i for i, n in enumerate(COCO_CLASSES)}
    unknown = [n for n in names.values() if n not in index]
    if unknown or len(names) != len(COCO_CLASSES):
        raise ConfigError(
            f"backbones.segmenter: the model's classes are not the 80 COCO classes (e.g. {unknown[:3]}); GenEval's "
            f"prompts name COCO classes: give a COCO-trained ultralytics model such as yolov8x-seg.pt"
        )
    return {int(k): index[v] for k, v in names.items()}
