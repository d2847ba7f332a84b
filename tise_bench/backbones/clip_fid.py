"""CLIP image embeddings as clean-fid's CLIP-FID computes them (``compute_fid(..., model_name="clip_vit_b_32")``).

Reference: GaParmar/clean-fid ``cleanfid/fid.py`` (``compute_fid``, ``get_files_features``),
``cleanfid/clip_features.py`` (``img_preprocess_clip``, ``CLIP_fx``) and ``cleanfid/utils.py`` (``ResizeDataset``),
step by step:

1. ``ResizeDataset``: ``np.array(Image.open(path).convert("RGB"))`` (uint8); ``fn_resize`` is
   ``img_preprocess_clip``: ``transforms.Resize(224, BICUBIC)`` on the PIL image (shortest side to 224, PIL's
   antialiased bicubic), ``transforms.CenterCrop(224)``, back to a uint8 array; then ``ToTensor() * 255`` (a
   float tensor in [0, 255]).
2. ``CLIP_fx("ViT-B/32")``: OpenAI's ``clip.load``; ``img / 255``, ``Normalize`` with OpenAI's CLIP mean
   (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258, 0.27577711), ``model.encode_image``:
   the 512-d image embedding, NOT L2-normalised (our ``clip`` backbone's ``image`` feature is normalised,
   which is why CLIP-FID has its own backbone and cache namespace).
3. ``frechet_distance`` of the two feature sets' mean and covariance (:mod:`tise_bench.metrics.fd`).

Here: open_clip ``ViT-B-32`` / ``openai`` (the same OpenAI checkpoint, QuickGELU) or a local file, through
:class:`~tise_bench.backbones.clip.ClipBackbone` (weights resolution, fail-fast offline, random variant); only the
preprocessing (above, written out in :func:`cleanfid_clip_pixels`) and the unnormalised output are clean-fid's.
Where we differ: OpenAI's ``clip.load`` on a CUDA device runs the network in fp16 weights; we run fp32, or fp16
autocast under ``backbones.amp`` on CUDA (own namespace ``-amp16``); on CPU both are fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .clip import ClipBackbone
from .registry import BackboneConfig, register_backbone

#: ``CLIP_fx.__call__``'s ``transforms.Normalize`` constants (OpenAI CLIP's)
CLEANFID_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLEANFID_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROC_VERSION = "v1"  # bump when the preprocessing code changes the pixels


@dataclass(frozen=True)
class ClipFidConfig(BackboneConfig):
    """``backbones.clip_fid``: clean-fid's CLIP (ViT-B/32 openai); ``weights``: a local open_clip checkpoint."""

    model: str = "ViT-B-32"  # clean-fid's CLIP_fx("ViT-B/32")
    pretrained: str | None = "openai"


def cleanfid_clip_pixels(img: Image.Image, size: int = 224) -> torch.Tensor:
    """clean-fid's ``img_preprocess_clip`` + ``ResizeDataset`` + ``CLIP_fx`` input steps -> float32 (3, size, size)."""
    from torchvision import transforms

    img = img if img.mode == "RGB" else img.convert("RGB")
    t = transforms.Compose(
        [transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(size)]
    )
    a = np.asarray(t(img)).clip(0, 255).astype(np.uint8)
    x = transforms.ToTensor()(a) * 255  # ResizeDataset: uint8 -> ToTensor() * 255
    x = x / 255.0  # CLIP_fx: img_t / 255.0
    return transforms.Normalize(CLEANFID_MEAN, CLEANFID_STD)(x)


@register_backbone("clip_fid", config=ClipFidConfig)
class ClipFidBackbone(ClipBackbone):
    """``image``: CLIP image embeddings as clean-fid's CLIP-FID takes them: its preprocessing, unnormalised."""

    provides = ("image",)

    def __init__(
        self,
        *,
        model: str = ClipFidConfig.model,
        pretrained: str | None = ClipFidConfig.pretrained,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__(
            model=model,
            pretrained=pretrained,
            weights=weights,
            random=random,
            seed=seed,
            cache_dir=cache_dir,
            device=device,
        )
        # input side, clean-fid's resize/crop/normalisation, QuickGELU, unnormalised output (the weights: ident, hash)
        self.preproc_version = (
            f"cleanfid{self.image_size}-pilbicubic-crop-openainorm{'-qgelu' if self.settings.quick_gelu else ''}"
            f"-unnormalised-{PREPROC_VERSION}"
        )

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            mean=list(CLEANFID_MEAN),
            std=list(CLEANFID_STD),
            interpolation="PIL bicubic",
            resize_mode="shortest side, then centre crop",
            embedding="encode_image, not L2-normalised",
            preprocessing="GaParmar/clean-fid cleanfid/clip_features.py img_preprocess_clip + CLIP_fx",
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return cleanfid_clip_pixels(img, self.image_size)

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self.net.encode_image(batch.to(self.device, non_blocking=True)).float()}
