"""LAION aesthetic predictor v2 ("improved aesthetic predictor"): an MLP on CLIP ViT-L/14 image embeddings.

Reference: christophschuhmann/improved-aesthetic-predictor ``simple_inference.py``, reproduced step by step:

1. ``model2, preprocess = clip.load("ViT-L/14")``: OpenAI CLIP ViT-L/14 (QuickGELU, 224 px, embed 768) and its
   preprocessing (resize the shortest side to 224 bicubic, centre crop 224, ``ToTensor``, OpenAI mean / std);
   ``image_features = model2.encode_image(image)`` (fp16 on CUDA).
2. ``im_emb_arr = normalized(image_features)``: the embedding divided by its L2 norm (numpy; a zero norm -> 1).
3. ``MLP(768)`` with ``layers = Sequential(Linear(768, 1024), Dropout(0.2), Linear(1024, 128), Dropout(0.2),
   Linear(128, 64), Dropout(0.1), Linear(64, 16), Linear(16, 1))`` — no activations (the ReLUs are commented
   out: the "linearMSE" head), loaded with ``model.load_state_dict(torch.load("sac+logos+ava1-l14-linearMSE.pth"))``
   (a plain state dict ``layers.{0,2,4,6,7}.{weight,bias}``, the file at the root of that repository);
   ``prediction = model(im_emb_arr as float32)`` in eval mode (dropout off): the aesthetic score (≈ 1–10).

Here: open_clip ``ViT-L-14`` with the pretrained tag ``openai`` (the same OpenAI checkpoint; open_clip's
``openai`` preprocessing is the one above), the weights resolved as :class:`~tise_bench.backbones.clip.ClipBackbone`
does (tag cache, download, or a local ``backbones.aesthetic.weights`` file; fail fast offline); the head from the
local file ``backbones.aesthetic.head``, read with ``torch.load(weights_only=True)``. Features: ``image`` (the
L2-normalised embedding) and ``score`` (the head's output). Differences, on purpose: the normalisation and the
head run in float32 (the reference normalises the fp16 CUDA embedding in fp16); fp16 autocast of the CLIP on CUDA
follows ``backbones.amp`` (the reference's ``clip.load`` on CUDA is fp16).

``backbones=random`` (no weights file): open_clip's ``ViT-L-14`` itself (QuickGELU and the preprocessing of the
``openai`` tag, as the real variant) with open_clip's own init, seeded, and a seeded head of the real sizes — the
global RNG is left untouched; loudly marked random (ident ``aesthetic-ViT-L-14-random-seed<seed>``); a ``head``
file given is still used. It is slow on a CPU (see the README). ``backbones.aesthetic.model`` names another open_clip
architecture (embed 768, what the head takes), for the real and the random variant alike; the aesthetic predictor
is ViT-L/14, a smaller registered config is for tests only.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from .base import ImageBackbone, file_sha256, resolve_device, state_dict_sha256
from .clip import ClipBackbone, clip_weights_file, tag_settings
from .hps import random_open_clip
from .object_classifier import read_state_dict
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, local_file

log = logging.getLogger(__name__)

ARCH, TAG = "ViT-L-14", "openai"  # simple_inference.py: clip.load("ViT-L/14")
HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
HEAD_REPO = "christophschuhmann/improved-aesthetic-predictor"
#: simple_inference.py ``MLP``: Linear sizes in order, and the Dropout after each of the first three Linears
HEAD_SIZES = (768, 1024, 128, 64, 16, 1)
HEAD_DROPOUT = (0.2, 0.2, 0.1)
PREPROC_VERSION = "v1"


class AestheticMLP(torch.nn.Module):
    """The reference's head (``simple_inference.py`` ``MLP.layers``): linear layers, dropout, no activations."""

    def __init__(self, input_size: int = HEAD_SIZES[0]) -> None:
        super().__init__()
        sizes = (input_size, *HEAD_SIZES[1:])
        mods: list[torch.nn.Module] = []
        for i in range(len(sizes) - 1):
            mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(HEAD_DROPOUT):
                mods.append(torch.nn.Dropout(HEAD_DROPOUT[i]))
        self.layers = torch.nn.Sequential(*mods)  # keys layers.{0,2,4,6,7}: the reference file's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_head(path: str) -> AestheticMLP:
    """The head from a local state-dict file (weights_only=True), strictly."""
    what = f"the LAION aesthetic predictor head {HEAD_FILE} ({HEAD_REPO}, the file at the repository's root)"
    sd = read_state_dict(path, "backbones.aesthetic.head", what)
    head = AestheticMLP()
    try:
        head.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).strip().splitlines()[:3])[:500]
        raise WeightsNotFoundError(
            f"backbones.aesthetic.head={path} is not the aesthetic MLP head {HEAD_SIZES}: {first}\n  fix: give {what}"
        ) from None
    return head


def head_weights_file(head: str | None) -> WeightsFile:
    """The MLP head :func:`_head_file` reads: only ``backbones.aesthetic.head`` (no cache, never downloaded)."""
    fix = (
        f"download {HEAD_FILE} from the GitHub repository {HEAD_REPO} (at its root) and pass "
        f"backbones.aesthetic.head=/path/to/{HEAD_FILE}"
    )
    path, found = local_file(head) if head else ("(backbones.aesthetic.head is not set)", None)
    what = f"LAION aesthetic MLP head {HEAD_FILE}"
    return WeightsFile(
        "aesthetic",
        what,
        f"https://github.com/{HEAD_REPO}",
        (path,),
        "backbones.aesthetic.head",
        found=found,
        run_downloads=False,
        fix=fix,
        given=bool(head),
    )


def _head_file(head: str | None) -> str:
    if not head:
        raise WeightsNotFoundError(
            f"the LAION aesthetic predictor needs its MLP head {HEAD_FILE}, and backbones.aesthetic.head is not set.\n"
            f"  fix: download {HEAD_FILE} from the GitHub repository {HEAD_REPO} (at its root) and pass "
            f"backbones.aesthetic.head=/path/to/{HEAD_FILE}; or use backbones=random for offline smoke runs"
        )
    p = Path(head).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(
            f"backbones.aesthetic.head={head} does not exist.\n  fix: give the local file {HEAD_FILE} from {HEAD_REPO}"
        )
    return str(p)


@dataclass(frozen=True)
class AestheticConfig(BackboneConfig):
    """``backbones.aesthetic``: ``head`` = the local MLP head file; ``weights`` = a local OpenAI ViT-L/14 open_clip
    checkpoint instead of the ``openai`` tag's download; ``model`` = the open_clip architecture (real and random)."""

    head: str | None = None  # sac+logos+ava1-l14-linearMSE.pth (christophschuhmann/improved-aesthetic-predictor)
    model: str = ARCH  # the predictor's ViT-L-14; another registered open_clip config (embed 768) only for tests


@register_backbone("aesthetic", config=AestheticConfig)
class AestheticBackbone(ImageBackbone):
    """``image``: L2-normalised CLIP ViT-L/14 embeddings; ``score``: the aesthetic head's prediction."""

    provides = ("image", "score")
    amp_capable = True  # the CLIP only; the head always runs in float32

    def __init__(
        self,
        *,
        head: str | None = None,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
        model: str = AestheticConfig.model,
        pretrained: str = TAG,  # constructor only: the tag of the real CLIP weights (its QuickGELU, preprocessing)
    ) -> None:
        super().__init__()
        import open_clip

        self.is_random = random
        self.device = resolve_device(device)
        head_path = _head_file(head) if (head or not random) else None
        loaded = load_head(head_path) if head_path else None  # fail fast: the head is checked before any CLIP
        embed = int((open_clip.get_model_config(model) or {}).get("embed_dim", -1))
        if embed != HEAD_SIZES[0]:
            raise ConfigError(
                f"backbones.aesthetic.model={model!r}: "
                + ("not an open_clip architecture" if embed < 0 else f"its embedding has {embed} dimensions")
                + f"; the aesthetic head takes {HEAD_SIZES[0]} ({ARCH})"
            )
        self.settings = tag_settings(ARCH, TAG) if random else tag_settings(model, pretrained)
        st = self.settings
        self.weights_path: str | None = None
        if random:  # the tag's QuickGELU and preprocessing, as the real variant runs them
            net = random_open_clip(model, seed, quick_gelu=st.quick_gelu)
            clip_hash, self.model_name = state_dict_sha256(net), f"{model} (RANDOM WEIGHTS)"
            self.ident = f"aesthetic-{model}-random-seed{seed}"
            size = net.visual.image_size
            self._preprocess = open_clip.transform.image_transform(
                int(size[0] if isinstance(size, (tuple, list)) else size),
                is_train=False,
                mean=st.mean,
                std=st.std,
                resize_mode=st.resize_mode,
                interpolation=st.interpolation,
            )
            log.warning("backbones.aesthetic: RANDOM-WEIGHTS open_clip %s, not the predictor (smoke tests only)", model)
        else:
            clip = ClipBackbone(
                model=model,
                pretrained=pretrained,
                weights=weights,
                cache_dir=cache_dir,
                device="cpu",
                keys="backbones.aesthetic.",
            )
            net, clip_hash, self.model_name = clip.net, clip.weights_hash, model
            self.weights_path = clip.weights_path
            self._preprocess = clip._preprocess
            self.ident = f"aesthetic-{model}-{Path(weights).stem if weights else pretrained}"
        if loaded is None or head_path is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                self.head = AestheticMLP()
            head_hash = state_dict_sha256(self.head)
        else:
            self.head, head_hash = loaded, file_sha256(head_path, cache_dir)
        self.head_path = head_path
        self.weights_hash = hashlib.sha256(f"clip:{clip_hash}|head:{head_hash}".encode()).hexdigest()
        size = net.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.preproc_version = f"{st.version(self.image_size)}-l2head-{PREPROC_VERSION}"
        self.net = net.to(self.device).eval()
        self.head = self.head.to(self.device).eval()

    @classmethod
    def weights_needed(
        cls,
        *,
        head: str | None = None,
        weights: str | None = None,
        random: bool = False,
        model: str = AestheticConfig.model,
        pretrained: str = TAG,
        **_: Any,
    ) -> list[WeightsFile]:
        """The CLIP checkpoint (as :class:`ClipBackbone` finds it) and the head file; random: the head if given."""
        heads = [head_weights_file(head)] if (head or not random) else []
        if random:
            return heads
        return [clip_weights_file("aesthetic", model, pretrained, weights, "backbones.aesthetic."), *heads]

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            model=self.model_name,
            pretrained_tag=None if self.is_random else self.settings.tag,
            weights_file=self.weights_path,
            head_file=self.head_path,
            head_sizes=list(HEAD_SIZES),
            head_random=self.head_path is None,
            image_size=self.image_size,
            mean=list(self.settings.mean),
            std=list(self.settings.std),
            interpolation=self.settings.interpolation,
            resize_mode=self.settings.resize_mode,
            reference=f"{HEAD_REPO} simple_inference.py",
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self._preprocess(img)

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.net.encode_image(batch.to(self.device, non_blocking=True))
        image = torch.nn.functional.normalize(emb.float(), dim=-1)  # simple_inference.py: normalized(...)
        with torch.autocast(device_type=self.device.type, enabled=False):
            score = self.head(image.float())[:, 0]
        return {"image": image, "score": score}
