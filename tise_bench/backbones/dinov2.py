"""DINOv2 (Oquab et al. 2023) CLS features as layer6ai-labs/dgm-eval computes them for FD-DINOv2 (Stein et al. 2023).

Reference, step by step (dgm-eval ``dgm_eval/dataloaders.py``, ``models/dinov2.py``, ``representations.py``):

1. ``ImagePathDataset``: ``Image.open(path).convert("RGB")``.
2. ``DINOv2Encoder.transform`` (``clean_resize=False``, its default): ``TF.Resize((224, 224), BICUBIC)`` on the PIL
   image (PIL's antialiased bicubic; the aspect ratio is not kept, nothing is cropped), ``TF.ToTensor()`` (/ 255),
   ``TF.Normalize`` with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). With
   ``--clean_resize``: ``resizer.pil_resize`` (clean-fid's float32 PIL bicubic, :mod:`.clean_resize`), / 255.
3. ``torch.hub.load("facebookresearch/dinov2", "dinov2_vitl14")``: ViT-L/14 (img_size 518, LayerScale,
   ``interpolate_offset`` 0.1, ``interpolate_antialias`` False). Its ``forward`` returns
   ``head(x_norm_clstoken)`` with ``head = Identity``: the CLS token after the final LayerNorm (1024-d). At a
   224 input its 37 × 37 position embeddings are resampled on every forward by ``interpolate_pos_encoding``:
   ``F.interpolate(..., mode="bicubic", antialias=False, scale_factor=((16 + 0.1) / 37,) * 2)`` (the
   CLS position kept), see :func:`dinov2_pos_embed`.
4. ``get_representations(normalized=False)``: the raw CLS features (no L2 normalisation).

Here: timm's ``vit_large_patch14_dinov2`` (the same layers: conv patch embedding, CLS token + position
embeddings, pre-norm blocks with LayerScale, LayerNorm eps 1e-6, exact GELU; timm's ``global_pool="token"``
after ``norm`` is DINOv2's ``x_norm_clstoken``) built at ``image_size`` with the position embeddings resampled
once, by DINOv2's formula, from the checkpoint's grid. Weights: timm's Hugging Face file
(``timm/vit_large_patch14_dinov2.lvd142m``) or Meta's ``dinov2_vitl14_pretrain.pth`` (what dgm-eval's
``torch.hub.load`` downloads; converted by timm's ``checkpoint_filter_fn``), from ``backbones.dinov2.weights`` or
the HF / torch hub caches; offline without them: an error naming both. Differences: attention runs through
``F.scaled_dot_product_attention`` (DINOv2: xFormers when installed, else matmul + softmax): round-off only.

``backbones=random``: the same architecture (``model``, ViT-L/14 by default, as ``random.yaml`` keeps it), seeded
timm init with LayerScale 1.0 (timm's 1e-5 would leave the blocks near the identity and every image with the same
CLS feature), the global RNG left untouched; ident ``dinov2-<model>-random-seed<seed>``. Its features are for smoke
tests only, never FD-DINOv2 values; ``backbones.dinov2.model=vit_small_patch14_dinov2`` is the quick choice for tests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from .base import ImageBackbone, file_sha256, host_reachable, resolve_device, state_dict_sha256
from .clean_resize import clean_resize
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, hf_cache_entry, hf_url, local_file

#: timm architectures of DINOv2's released backbones (without registers), as dgm-eval's ``vits14 … vitg14``
MODELS = (
    "vit_small_patch14_dinov2",
    "vit_base_patch14_dinov2",
    "vit_large_patch14_dinov2",
    "vit_giant_patch14_dinov2",
)
TAG = "lvd142m"  # DINOv2's pretraining set: timm's tag for the released weights
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # dgm-eval DINOv2Encoder.transform
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATE_OFFSET = 0.1  # dinov2/hub/backbones.py _make_dinov2_model defaults
RESIZES = ("pil", "clean")  # dgm-eval: TF.Resize bicubic on the PIL image | --clean_resize (resizer.pil_resize)
PREPROC_VERSION = "v1"  # bump when the preprocessing code changes the pixels


@dataclass(frozen=True)
class Dinov2Config(BackboneConfig):
    """``backbones.dinov2``; ``weights``: timm's model.safetensors or Meta's dinov2_vit*14_pretrain.pth."""

    model: str = "vit_large_patch14_dinov2"  # dgm-eval's default arch vitl14; any of MODELS
    image_size: int = 224  # dgm-eval's Resize((224, 224))
    resize: str = "pil"  # pil (dgm-eval's default) | clean (dgm-eval --clean_resize)


def dinov2_pos_embed(pos_embed: torch.Tensor, grid: int, offset: float = INTERPOLATE_OFFSET) -> torch.Tensor:
    """DINOv2's ``interpolate_pos_encoding`` for a square ``grid`` × ``grid`` patch grid: (1, 1 + M², D) ->
    (1, 1 + grid², D); bicubic, no antialias, ``scale_factor = (grid + offset) / M`` (its historical kludge,
    which also moves the sampling positions), in float32, the CLS position unchanged."""
    n = pos_embed.shape[1] - 1
    m = int(math.sqrt(n))
    if m * m != n:
        raise ValueError(f"position embeddings of {n} patches are not a square grid")
    if m == grid:
        return pos_embed
    dtype, pe = pos_embed.dtype, pos_embed.float()
    dim = pe.shape[-1]
    scale = float(grid + offset) / m
    patch = torch.nn.functional.interpolate(
        pe[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2),
        mode="bicubic",
        antialias=False,
        scale_factor=(scale, scale),
    )
    if tuple(patch.shape[-2:]) != (grid, grid):
        raise ValueError(f"DINOv2 position-embedding resampling gave {tuple(patch.shape[-2:])}, not {grid}x{grid}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat((pe[:, :1], patch), dim=1).to(dtype)


def dinov2_pixels(img: Image.Image, size: int, resize: str = "pil") -> torch.Tensor:
    """dgm-eval's ``DINOv2Encoder.transform``: resize to ``size`` × ``size`` (no crop), [0, 1], ImageNet
    normalisation -> float32 (3, size, size)."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    if resize == "clean":
        x = torch.from_numpy(clean_resize(img, (size, size)).transpose(2, 0, 1).copy()) / 255
    elif resize == "pil":
        a = np.asarray(img.resize((size, size), resample=Image.Resampling.BICUBIC))
        x = torch.from_numpy(a.transpose(2, 0, 1).copy()).float().div(255)  # TF.ToTensor
    else:
        raise ConfigError(f"backbones.dinov2.resize={resize!r}: valid values are {', '.join(RESIZES)}")
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype)[:, None, None]
    std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype)[:, None, None]
    return (x - mean) / std  # TF.Normalize


def _pretrained_cfg(model: str) -> Any:
    import timm

    return timm.models.get_pretrained_cfg(f"{model}.{TAG}")


def _meta_filename(model: str) -> str:
    """Meta's checkpoint name, e.g. ``dinov2_vitl14_pretrain.pth`` (torch hub saves it under this name)."""
    return os.path.basename(_pretrained_cfg(model).url)


HF_NAMES = ("model.safetensors", "pytorch_model.bin")  # timm's files in the Hugging Face repo, looked up in order


def _meta_path(model: str) -> Path:
    """Where torch hub keeps Meta's checkpoint (looked in after the Hugging Face cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / _meta_filename(model)


def _hf_cached(repo: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in HF_NAMES:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def find_dinov2_weights(model: str, weights: str | None) -> Path:
    """``weights``, else timm's file in the Hugging Face cache, else Meta's file in the torch hub cache, else a
    download of timm's file when the network is up; offline: an error naming what to provide."""
    if weights:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(
                f"backbones.dinov2.weights={weights} does not exist. Give timm's model.safetensors of "
                f"timm/{model}.{TAG} or Meta's {_meta_filename(model)}."
            )
        return p
    repo = f"timm/{model}.{TAG}"
    hit = _hf_cached(repo)
    if hit:
        return Path(hit)
    meta = _meta_path(model)
    if meta.is_file():
        return meta
    if not host_reachable("huggingface.co"):
        raise WeightsNotFoundError(
            f"DINOv2 weights for {model} not found and the network is unreachable.\n"
            f"  looked in: the Hugging Face cache ({repo}: model.safetensors, pytorch_model.bin); {meta}\n"
            f"  fix: on a machine with internet download https://huggingface.co/{repo} (model.safetensors) or "
            f"{_pretrained_cfg(model).url} and pass backbones.dinov2.weights=/path/to/file (or copy Meta's file to "
            f"{meta}); or run offline smoke tests with backbones=random."
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, "model.safetensors"))
    except Exception as e:  # network, missing file
        raise WeightsNotFoundError(
            f"downloading DINOv2 weights {repo} failed: {e}\n  fix: pass backbones.dinov2.weights=/path/to/file"
        ) from e


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code from a shared cache
    if not isinstance(state, dict):
        raise ValueError(f"not a state dict ({type(state).__name__})")
    inner = state.get("model", state.get("state_dict", state))
    if not isinstance(inner, dict):
        raise ValueError(f"not a state dict ({type(inner).__name__})")
    return inner


def _architecture(model: str, image_size: int, *, meta_device: bool) -> torch.nn.Module:
    import timm

    kw: dict[str, Any] = dict(pretrained=False, img_size=image_size, num_classes=0, init_values=1.0)
    if meta_device:  # real weights replace every tensor: skip timm's init of 300M parameters
        with torch.device("meta"):
            return timm.create_model(model, **kw)
    return timm.create_model(model, **kw)


def load_dinov2(path: Path, model: str, image_size: int) -> torch.nn.Module:
    """timm's ``model`` at ``image_size`` with the checkpoint's weights, position embeddings resampled as DINOv2
    resamples them at that input (:func:`dinov2_pos_embed`); a file that does not fit is a clear error."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    net: Any = _architecture(model, image_size, meta_device=True)  # timm's VisionTransformer
    try:
        state = dict(_read_state(path))
        if "pos_embed" not in state:
            raise KeyError(
                "no 'pos_embed': neither timm's nor Meta's DINOv2 layout (Hugging Face transformers' is not read)"
            )
        state["pos_embed"] = dinov2_pos_embed(state["pos_embed"], image_size // 14)
        state = checkpoint_filter_fn(state, net)  # Meta's layout -> timm's (mask_token dropped); pos_embed fits
        net.load_state_dict(state, strict=True, assign=True)
    except Exception as e:  # wrong file, other architecture, truncated download, pickled code
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise WeightsNotFoundError(
            f"could not load DINOv2 weights {path} into {model}: {type(e).__name__}: {first}\n"
            f"  fix: give timm's model.safetensors of timm/{model}.{TAG} or Meta's {_meta_filename(model)} as "
            f"backbones.dinov2.weights, or set backbones.dinov2.model to the architecture the file is for."
        ) from None
    return net.eval()


def random_dinov2(model: str, image_size: int, seed: int) -> torch.nn.Module:
    """timm's seeded init of ``model`` (global RNG forked: the caller's random state is untouched), LayerScale 1."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _architecture(model, image_size, meta_device=False).eval()


@register_backbone("dinov2", config=Dinov2Config)
class Dinov2Backbone(ImageBackbone):
    """``cls``: the final LayerNorm's CLS token (dgm-eval's DINOv2 representation), unnormalised."""

    provides = ("cls",)

    def __init__(
        self,
        *,
        model: str = Dinov2Config.model,
        image_size: int = Dinov2Config.image_size,
        resize: str = Dinov2Config.resize,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__()
        if model not in MODELS:
            raise ConfigError(f"backbones.dinov2.model={model!r}: valid values are {', '.join(MODELS)}")
        if image_size < 14 or image_size % 14:
            raise ConfigError(f"backbones.dinov2.image_size={image_size}: a positive multiple of the patch size 14")
        if resize not in RESIZES:
            raise ConfigError(f"backbones.dinov2.resize={resize!r}: valid values are {', '.join(RESIZES)}")
        self.model_name, self.image_size, self.resize = model, int(image_size), resize
        self.is_random = random
        self.weights_path: Path | None = None
        if random:
            net = random_dinov2(model, self.image_size, seed)
            self.weights_hash = state_dict_sha256(net)
            tag = f"random-seed{seed}"
        else:
            self.weights_path = find_dinov2_weights(model, weights)
            self.weights_hash = file_sha256(self.weights_path, cache_dir)
            net = load_dinov2(self.weights_path, model, self.image_size)
            tag = TAG
        self.ident = f"dinov2-{model}-{tag}"
        # everything besides the weights that changes the features: input side, resize, normalisation, pos. embed
        self.preproc_version = (
            f"dgmeval{self.image_size}-{resize}bicubic-imagenet-posoff{INTERPOLATE_OFFSET:g}-{PREPROC_VERSION}"
        )
        self.device = resolve_device(device)
        self.net = net.to(self.device)

    @classmethod
    def weights_needed(
        cls, *, model: str = Dinov2Config.model, weights: str | None = None, random: bool = False, **_: Any
    ) -> list[WeightsFile]:
        """The file :func:`find_dinov2_weights` loads (no network): ``weights``, else timm's file in the Hugging Face
        cache, else Meta's in the torch hub cache; downloaded (timm's model.safetensors) when missing."""
        if random:
            return []
        what, key = f"DINOv2 {model}.{TAG} weights", "backbones.dinov2.weights"
        if weights:
            path, found = local_file(weights)
            fix = f"give timm's model.safetensors of timm/{model}.{TAG} or Meta's {_meta_filename(model)} as {key}"
            return [WeightsFile("dinov2", what, "", (path,), key, None, found, None, False, fix, given=True)]
        repo, meta = f"timm/{model}.{TAG}", _meta_path(model)
        hit = _hf_cached(repo) or (str(meta) if meta.is_file() else None)
        fix = (
            f"download {hf_url(repo, HF_NAMES[0])} (or Meta's {_pretrained_cfg(model).url}) and pass {key}=/path/to/"
            f"file (or copy Meta's file to {meta})"
        )
        looked = (*(hf_cache_entry(repo, n) for n in HF_NAMES), str(meta))
        return [
            WeightsFile(
                "dinov2",
                what,
                hf_url(repo, HF_NAMES[0]),
                looked,
                key,
                None,
                hit,
                lambda: str(find_dinov2_weights(model, None)),
                True,
                fix,
            )
        ]

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return dinov2_pixels(img, self.image_size, self.resize)

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            model=self.model_name,
            image_size=self.image_size,
            resize=f"{self.resize} bicubic to {self.image_size}x{self.image_size}, no crop",
            mean=list(IMAGENET_MEAN),
            std=list(IMAGENET_STD),
            weights_file=str(self.weights_path) if self.weights_path else None,
            preprocessing="layer6ai-labs/dgm-eval dgm_eval/models/dinov2.py",
        )
        return d

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        net: Any = self.net
        tokens = net.forward_features(batch.to(self.device, non_blocking=True))  # after the final norm
        return {"cls": tokens[:, 0].float()}
