"""HPSv2 / HPSv2.1 (Wu et al. 2023, "Human Preference Score v2"): an open_clip ViT-H-14 fine-tuned on human
preferences; the score of an image for its prompt is the cosine of their embeddings.

Reference: tgxs002/HPSv2 ``hpsv2/img_score.py`` (``score``) and ``hpsv2/evaluation.py`` (the benchmark), with the
open_clip copy under ``hpsv2/src/open_clip``. Their pipeline, step by step:

1. ``create_model_and_transforms('ViT-H-14', ..., precision='amp', light_augmentation=True, output_dict=True)``:
   open_clip's ViT-H-14 (GELU, no QuickGELU; 224 px, patch 14; embed 1024; text: context 77, BPE vocab 49408).
   The transform with ``light_augmentation`` (``transform.py``, ``image_transform(..., resize_longest_max=True)``)
   is: ``ToTensor()`` (PIL -> float [0, 1]); ``ResizeMaxSize(224)``: ``scale = 224 / max(h, w)``; when
   ``scale != 1`` the tensor is resized bicubic to ``(round(h·scale), round(w·scale))`` and zero-padded to
   224 × 224 (left/top ``pad // 2``, right/bottom the rest), i.e. letterboxed in black *before* normalisation;
   then ``Normalize`` with OpenAI's CLIP mean / std (``OPENAI_DATASET_MEAN``, ``OPENAI_DATASET_STD``).
2. ``checkpoint = torch.load(cp); model.load_state_dict(checkpoint['state_dict'])`` (strict): the checkpoint
   ``HPS_v2_compressed.pt`` (``v2.0``) or ``HPS_v2.1_compressed.pt`` (``v2.1``) from the Hugging Face repo
   ``xswu/HPSv2`` (``hpsv2/utils.py``: ``hps_version_map``) holds the whole CLIP (both towers, ``logit_scale``).
3. ``tokenizer = get_tokenizer('ViT-H-14')``; the prompt as given (no prefix), truncated to 77 tokens.
4. Under ``torch.cuda.amp.autocast()``: ``outputs = model(image, text)`` -> ``image_features`` and
   ``text_features``, both L2-normalised by the model (``encode_image/encode_text(normalize=True)``);
   ``logits_per_image = image_features @ text_features.T``; the score is its diagonal. ``img_score.score``
   returns it as is (a cosine); ``evaluation.py`` multiplies by 100 (the published benchmark tables, e.g.
   SDXL Refiner 0.9: 31.34 with v2.1) — the metric's ``scale`` parameter (:mod:`tise_bench.metrics.preference`).

Here: the same open_clip architecture from the pip package (its ViT-H-14 has the state-dict keys and outputs of
HPSv2's copy), the checkpoint read with ``torch.load(weights_only=True)`` (no pickled code runs; public code
loads the released files this way) from ``backbones.hps.weights`` or the Hugging Face cache (never downloaded
here), ``backbones.hps.version`` recorded. This backbone gives the L2-normalised image embedding (``image``) and
the caption embeddings (:meth:`HpsBackbone.encode_text`); the score is computed by the metric, in float64.

Differences, on purpose: (a) the resize passes ``antialias=True`` explicitly (torchvision's default from 0.17 on,
which the reference code gets when run today; with torchvision < 0.17 tensors were resized without
antialiasing); (b) an image whose longest side already is 224 but that is not square is padded to 224 × 224 (the
reference skips padding when ``scale == 1``, giving a non-square input that its ViT cannot take). fp16 autocast on
CUDA follows ``backbones.amp`` (the reference always uses it); features are cached per precision.

``backbones=random`` (no weights file): open_clip's ``ViT-H-14`` itself (both towers, ~986 M parameters) with
open_clip's own init, seeded (the global RNG is left untouched) — loudly marked random (ident
``hps-ViT-H-14-random-seed<seed>``); numbers are for smoke tests only. It is slow on a CPU (see the README).
``backbones.hps.model`` names another open_clip architecture, for the real path (a checkpoint of that
architecture) and the random one alike; HPS is ViT-H-14, a smaller registered config is for tests only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from .base import file_sha256, resolve_device, state_dict_sha256
from .clip import OpenClipEmbedder
from .object_classifier import read_state_dict
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, hf_cache_entry, hf_url, local_file

log = logging.getLogger(__name__)

ARCH = "ViT-H-14"  # img_score.py / evaluation.py: create_model_and_transforms('ViT-H-14', ...)
IMAGE_SIZE = 224
HF_REPO = "xswu/HPSv2"  # huggingface_hub.hf_hub_download("xswu/HPSv2", hps_version_map[hps_version])
#: hpsv2/utils.py ``hps_version_map`` ("v2.0" is spelled "v2" here; both are accepted)
CHECKPOINTS = {"v2": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
_SPELLINGS = {"v2": "v2", "v2.0": "v2", "2": "v2", "2.0": "v2", "v2.1": "v2.1", "2.1": "v2.1"}
PREPROC_VERSION = "v1"  # bump when the preprocessing code changes the pixels


def canonical_version(version: str) -> str:
    """``v2`` / ``v2.1`` from the spellings users write (``v2.0`` as in hpsv2/utils.py, ``2.1`` as YAML reads it)."""
    v = _SPELLINGS.get(str(version).strip().lower())
    if v is None:
        raise ConfigError(
            f"backbones.hps.version={version!r}: valid values are {', '.join(CHECKPOINTS)} "
            f"(the checkpoint {', '.join(CHECKPOINTS.values())} of {HF_REPO})"
        )
    return v


def tiny_open_clip(seed: int, cfg: dict[str, Any], *, quick_gelu: bool = False) -> Any:
    """A seeded open_clip ``CLIP`` of ``cfg`` (open_clip's own init; the global RNG is left untouched)."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(**cfg, quick_gelu=quick_gelu)


def random_open_clip(model: str, seed: int, *, quick_gelu: bool = False) -> Any:
    """open_clip's architecture ``model`` (a registered config name, e.g. ``ViT-H-14``) with open_clip's own init,
    seeded: the same seed gives the same weights; the global RNG is left untouched."""
    import open_clip

    if open_clip.get_model_config(model) is None:
        raise ConfigError(f"{model!r} is not an open_clip architecture (see open_clip.list_models(), e.g. {ARCH})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model(model, pretrained=None, force_quick_gelu=quick_gelu)


def hps_pixels(img: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """The reference's ``ToTensor()`` + ``ResizeMaxSize(size)`` (fill 0), before normalisation: float (3, size, size).

    The longest side becomes ``size`` (bicubic on the float tensor, antialiased, to ``round(side · scale)``), the
    rest is zero-padded, ``pad // 2`` on the left/top."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    x = TF.to_tensor(img if img.mode == "RGB" else img.convert("RGB"))
    h, w = int(x.shape[1]), int(x.shape[2])
    scale = size / float(max(h, w))
    if scale != 1.0:
        h, w = round(h * scale), round(w * scale)  # Python's round, as ResizeMaxSize
        x = TF.resize(x, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    pad_h, pad_w = size - h, size - w
    if pad_h or pad_w:
        x = TF.pad(x, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
    return x


def hps_preprocess(img: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """:func:`hps_pixels` then ``Normalize`` with OpenAI's CLIP mean / std -> float32 (3, size, size)."""
    import torchvision.transforms.functional as TF
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return TF.normalize(hps_pixels(img, size), mean=list(OPENAI_DATASET_MEAN), std=list(OPENAI_DATASET_STD))


def _cached_checkpoint(version: str) -> tuple[str | None, str]:
    """(the checkpoint in the Hugging Face cache or None, where that was looked) — no network."""
    name = CHECKPOINTS[version]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return None, "huggingface_hub not installed"
    hit = try_to_load_from_cache(HF_REPO, name)
    where = hf_cache_entry(HF_REPO, name)
    return (hit if isinstance(hit, str) and os.path.isfile(hit) else None), where


def _fix(version: str) -> str:
    name = CHECKPOINTS[version]
    return (
        f"download {name} from the Hugging Face repo {HF_REPO} (e.g. `huggingface-cli download {HF_REPO} {name}` or "
        f"`python -m tise_bench.weights fetch`) and pass backbones.hps.weights=/path/to/{name} (with "
        f"backbones.hps.version={version}); or use backbones=random for offline smoke runs"
    )


def hps_weights_file(weights: str | None, version: str) -> WeightsFile:
    """The checkpoint :func:`resolve_checkpoint` loads (no network). Runs never download it; ``fetch`` puts it in
    the Hugging Face cache, where runs look."""
    name, key = CHECKPOINTS[version], "backbones.hps.weights"
    what, url = f"HPS {version} checkpoint {name}", hf_url(HF_REPO, name)
    if weights:
        path, found = local_file(weights)
        return WeightsFile("hps", what, url, (path,), key, None, found, None, False, _fix(version), given=True)

    def download() -> str:
        from huggingface_hub import hf_hub_download

        return str(hf_hub_download(HF_REPO, name))

    hit, looked = _cached_checkpoint(version)
    return WeightsFile("hps", what, url, (looked,), key, None, hit, download, False, _fix(version))


def resolve_checkpoint(weights: str | None, version: str) -> str:
    """-> the HPS checkpoint file: ``weights``, else the Hugging Face cache's copy; else a clear error."""
    name = CHECKPOINTS[version]
    fix = _fix(version)
    if weights:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"backbones.hps.weights={weights} does not exist.\n  fix: {fix}")
        return str(p)
    hit, looked = _cached_checkpoint(version)
    if hit:
        return hit
    raise WeightsNotFoundError(
        f"HPS {version} needs its checkpoint {name} ({HF_REPO}), and backbones.hps.weights is not set "
        f"(looked in: {looked}; tise_bench never downloads it).\n  fix: {fix}"
    )


def load_hps_model(path: str, version: str, model: str = ARCH) -> Any:
    """open_clip ``model`` with the HPS checkpoint's ``state_dict`` loaded strictly (read with weights_only=True)."""
    import open_clip

    what = f"the HPS {version} checkpoint {CHECKPOINTS[version]} from {HF_REPO} (a dict with 'state_dict')"
    sd = read_state_dict(path, "backbones.hps.weights", what)
    net = open_clip.create_model(model, pretrained=None)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise WeightsNotFoundError(
            f"backbones.hps.weights={path} is not an HPS checkpoint of open_clip {model}: "
            f"{' '.join(first[:3])[:500]}\n  fix: give {what}"
        ) from None
    return net


@dataclass(frozen=True)
class HpsConfig(BackboneConfig):
    """``backbones.hps``: ``weights`` = the local HPS checkpoint file; ``version`` = which one it is; ``model`` = the
    open_clip architecture (real and random variants alike)."""

    version: str = "v2.1"  # v2 (HPS_v2_compressed.pt) | v2.1 (HPS_v2.1_compressed.pt), from xswu/HPSv2
    model: str = ARCH  # HPS is ViT-H-14; another registered open_clip config only for tests / quick smoke runs


@register_backbone("hps", config=HpsConfig)
class HpsBackbone(OpenClipEmbedder):
    """``image``: L2-normalised HPS image embeddings; :meth:`encode_text`: the prompts' HPS text embeddings."""

    provides = ("image",)
    amp_capable = True  # the reference scores under torch.cuda.amp.autocast()

    def __init__(
        self,
        *,
        version: str = HpsConfig.version,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
        model: str = HpsConfig.model,
    ) -> None:
        super().__init__()
        import open_clip

        self.version = canonical_version(version)
        if open_clip.get_model_config(model) is None:
            raise ConfigError(f"backbones.hps.model={model!r} is not an open_clip architecture (HPS's is {ARCH})")
        self.is_random = random
        self.device = resolve_device(device)
        self.weights_path: str | None = None
        if random:
            net = random_open_clip(model, seed)
            self.model_name = f"{model} (RANDOM WEIGHTS)"
            self.weights_hash = state_dict_sha256(net)
            self.ident = f"hps-{model}-random-seed{seed}"
            log.warning("backbones.hps: RANDOM-WEIGHTS open_clip %s, not HPS (smoke tests only)", model)
        else:
            path = resolve_checkpoint(weights, self.version)
            net = load_hps_model(path, self.version, model)
            self.model_name = model
            self.weights_path = path
            self.weights_hash = file_sha256(path, cache_dir)
            self.ident = f"hps-{self.version}-{model}"
        size = net.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.preproc_version = f"hps{self.image_size}-maxside-bicubicaa-pad0-openai-{PREPROC_VERSION}"
        self.net = net.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(ARCH)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77) or 77)
        self.n_forward_texts = 0

    @classmethod
    def weights_needed(
        cls, *, version: str = HpsConfig.version, weights: str | None = None, random: bool = False, **_: Any
    ) -> list[WeightsFile]:
        """The HPS checkpoint (:func:`hps_weights_file`)."""
        return [] if random else [hps_weights_file(weights, canonical_version(version))]

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            model=self.model_name,
            version=self.version,
            checkpoint=None if self.is_random else CHECKPOINTS[self.version],
            weights_file=self.weights_path,
            image_size=self.image_size,
            preprocessing="ToTensor, longest side -> 224 bicubic (antialias), zero-pad to 224x224, OpenAI mean/std",
            score="cos(image, prompt) = image_features @ text_features.T, diagonal (hpsv2/img_score.py)",
            reference="tgxs002/HPSv2 hpsv2/img_score.py, hpsv2/evaluation.py",
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return hps_preprocess(img, self.image_size)
