"""CLIP image embeddings as the CMMD reference computes them (Jayasumana et al. 2024, "Rethinking FID").

Reference: google-research/google-research ``cmmd/`` (``embedding.py``, ``io_util.py``; the PyTorch port
sayakpaul/cmmd-pytorch does the same). Its pipeline, step by step:

1. ``io_util._read_image``: PIL opens the file; ``_center_crop_and_resize(im, 336)`` crops the centred square of
   side ``l = min(w, h)`` (box ``((w - l) // 2, (h - l) // 2, + l, + l)``) and resizes it with
   ``im.resize((336, 336), resample=Image.BICUBIC)`` (PIL, antialiased); ``np.asarray(im).astype(float32)``
   (grayscale tiled to RGB); then ``/ 255``.
2. ``embedding._clip_preprocess``: ``jax.image.resize(..., (336, 336), 'bicubic')`` — the identity here (the
   image already is 336 × 336) — then ``clip.normalize_image``: ``(x - mean) / std`` with OpenAI's CLIP mean and
   std.
3. ``vit_l14_336px`` (OpenAI CLIP ViT-L/14@336px, ``ViT-L-14-336px.pt``): the image embedding, L2-normalised
   (scenic's CLIP normalises; the PyTorch port divides by the norm explicitly).

Note on "no crop": the issue (and the paper's wording) speak of a bicubic resize to 336 *without* crop. The
reference's model-side step indeed does not crop (``do_center_crop=False`` in the PyTorch port, a plain resize in
the JAX one), but its image reader (``io_util._center_crop_and_resize``) centre-crops to a square first. We
follow the code: ``crop: center`` is the default; ``crop: none`` squashes the whole image to 336 × 336 with the
same PIL bicubic resize (the paper's wording). Both are separate cache namespaces.

Here: open_clip ``ViT-L-14-336`` with the pretrained tag ``openai`` (the same OpenAI checkpoint) or a local file;
the network, the weights resolution (tag cache, download, local file, fail-fast offline), QuickGELU and the
embedding come from :class:`~tise_bench.backbones.clip.ClipBackbone`; only the image preprocessing is the CMMD
reference's (above), never open_clip's (which resizes the shortest side, then centre-crops). The input side is
the architecture's own (336 for ViT-L-14-336), as the reference takes ``input_image_size`` from the model.
Always fp32 (``amp_capable`` off): CMMD is a small difference of kernel means, fp16 embeddings would move it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError
from .clip import ClipBackbone
from .registry import BackboneConfig, register_backbone

#: crop modes: ``center`` = the reference's ``io_util._center_crop_and_resize``; ``none`` = squash the whole image
CROPS = ("center", "none")
PREPROC_VERSION = "v1"  # bump when the preprocessing code changes the pixels


@dataclass(frozen=True)
class ClipCmmdConfig(BackboneConfig):
    """``backbones.clip_cmmd``: the CLIP of CMMD; ``weights``: a local open_clip checkpoint instead of the tag's."""

    model: str = "ViT-L-14-336"  # the reference's vit_l14_336px (OpenAI CLIP ViT-L/14@336px)
    pretrained: str | None = "openai"  # open_clip tag of the OpenAI ViT-L-14-336px.pt checkpoint
    crop: str = "center"  # center (the reference's io_util) | none (resize the whole image, no crop)


def cmmd_pixels(img: Image.Image, size: int, crop: str = "center") -> np.ndarray:
    """The reference's image reader: centred square crop (``crop='center'``) then PIL bicubic resize to
    ``size`` × ``size``, as float32 in [0, 1], (size, size, 3)."""
    if crop not in CROPS:
        raise ConfigError(f"backbones.clip_cmmd.crop={crop!r}: valid values are {', '.join(CROPS)}")
    img = img if img.mode == "RGB" else img.convert("RGB")
    if crop == "center":
        w, h = img.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        img = img.crop((left, top, left + side, top + side))
    img = img.resize((size, size), resample=Image.Resampling.BICUBIC)  # == Image.BICUBIC
    return np.asarray(img).astype(np.float32) / 255.0


def cmmd_preprocess(
    img: Image.Image, size: int, mean: tuple[float, ...], std: tuple[float, ...], crop: str = "center"
) -> torch.Tensor:
    """:func:`cmmd_pixels`, then ``(x - mean) / std`` per channel -> float32 (3, size, size)."""
    x = (cmmd_pixels(img, size, crop) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


@register_backbone("clip_cmmd", config=ClipCmmdConfig)
class ClipCmmdBackbone(ClipBackbone):
    """``image``: L2-normalised CLIP image embeddings with the CMMD reference's preprocessing (fp32)."""

    provides = ("image",)
    amp_capable = False

    def __init__(
        self,
        *,
        model: str = ClipCmmdConfig.model,
        pretrained: str | None = ClipCmmdConfig.pretrained,
        crop: str = ClipCmmdConfig.crop,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        if crop not in CROPS:
            raise ConfigError(f"backbones.clip_cmmd.crop={crop!r}: valid values are {', '.join(CROPS)}")
        super().__init__(
            model=model,
            pretrained=pretrained,
            weights=weights,
            random=random,
            seed=seed,
            cache_dir=cache_dir,
            device=device,
        )
        self.crop = crop
        st = self.settings
        norm = hashlib.sha256(repr((tuple(map(float, st.mean)), tuple(map(float, st.std)))).encode()).hexdigest()[:8]
        # everything besides the weights that changes the features: input side, crop, resize, normalisation,
        # QuickGELU (the architecture and weights are in ident and weights_hash)
        self.preproc_version = (
            f"cmmd{self.image_size}-crop{crop}-pilbicubic-norm{norm}{'-qgelu' if st.quick_gelu else ''}"
            f"-{PREPROC_VERSION}"
        )

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            crop=self.crop,
            interpolation="PIL bicubic",
            resize_mode="center square crop, then resize" if self.crop == "center" else "resize (squash), no crop",
            preprocessing="google-research cmmd/io_util.py + embedding.py",
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return cmmd_preprocess(img, self.image_size, self.settings.mean, self.settings.std, self.crop)
