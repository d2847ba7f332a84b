"""CLIP via open_clip: L2-normalised image embeddings (``image``) and caption embeddings.

Any open_clip architecture; weights from a pretrained tag (open_clip's own download + cache), a local
file, or ``random`` (same architecture, seeded init) for offline tests.

Weights. ``backbones.clip.pretrained`` names an open_clip pretrained tag for ``backbones.clip.model``
(``ViT-B-32`` / ``openai`` by default). Without ``backbones.clip.weights`` the tag's checkpoint is found in
open_clip's download cache (the Hugging Face hub cache or ``~/.cache/clip``), or downloaded there once by
open_clip's own downloader when the network is up; either way the backbone holds the checkpoint FILE,
whose sha256 is the ``weights_hash``. With ``backbones.clip.weights=/path/to/file`` that file is loaded
and ``pretrained`` stays the tag the file came from (see below); ``pretrained: null`` means "no tag":
open_clip's defaults for the architecture, recorded as such in ``describe()``.

Per-tag settings (:func:`tag_settings`). The tag, not the file, decides how the network is run, exactly
as open_clip's pretrained config says for that tag: QuickGELU (the tag's ``quick_gelu`` field, or a
``-quickgelu`` architecture) and the image preprocessing (``mean``, ``std``, ``interpolation``,
``resize_mode``: e.g. SigLIP squashes to the square with mean = std = 0.5; OpenAI resizes the shortest
side bicubic and centre-crops). These are applied whether the weights came from the tag's download, the
cache or a local file, are part of the cache namespace (``preproc_version``) and are listed in
``describe()``. Image preprocessing is open_clip's own transform built from them, applied to the
already-decoded PIL image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from .base import ImageBackbone, file_sha256, host_reachable, resolve_device, state_dict_sha256
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, hf_cache_entry, hf_url, local_file

log = logging.getLogger(__name__)
NO_TAG = ("", "none", "null")


@dataclass(frozen=True)
class TagSettings:
    """How open_clip runs ``model`` with the weights of ``tag``: activation and image preprocessing."""

    tag: str | None  # None: no tag (a local file with pretrained=null): open_clip's defaults
    quick_gelu: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    resize_mode: str
    source: str  # where the settings come from, for describe()

    def version(self, size: int) -> str:
        """Cache-namespace part: everything here that changes the image features besides the weights."""
        norm = hashlib.sha256(repr((tuple(map(float, self.mean)), tuple(map(float, self.std)))).encode())
        return (
            f"openclip{size}-{self.resize_mode}-{self.interpolation}-norm{norm.hexdigest()[:8]}"
            f"{'-qgelu' if self.quick_gelu else ''}-v2"
        )


def _model_config(model: str, keys: str = "backbones.clip.") -> dict:
    import open_clip

    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise ConfigError(
            f"{keys}model={model!r} is not an open_clip architecture "
            f"(see open_clip.list_models(), e.g. ViT-B-32, ViT-B-16-SigLIP)"
        )
    return cfg


def tag_settings(model: str, tag: str | None, *, strict: bool = True, keys: str = "backbones.clip.") -> TagSettings:
    """QuickGELU and preprocessing for ``model`` run with the weights of ``tag``, from open_clip's
    pretrained config (``open_clip.pretrained.get_pretrained_cfg``).

    ``tag`` None/"none": open_clip's defaults (``PreprocessCfg``, the architecture's own ``quick_gelu``).
    An unknown tag is refused when ``strict`` (real weights: the settings would be guessed), else
    (random weights) falls back to the defaults. ``keys``: the config keys' prefix the messages name.
    """
    import open_clip
    from open_clip import pretrained as P
    from open_clip.transform import PreprocessCfg

    arch_qg = bool(_model_config(model, keys).get("quick_gelu", False))  # the -quickgelu architectures
    d = PreprocessCfg()
    cfg = P.get_pretrained_cfg(model, tag) if tag and str(tag).lower() not in NO_TAG else {}
    if not cfg:
        if tag and str(tag).lower() not in NO_TAG and strict:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
            raise ConfigError(
                f"{keys}pretrained={tag!r} is not an open_clip pretrained tag of {model} (known: {known}). "
                f"Set it to the tag the weights came from (its QuickGELU and preprocessing are taken from open_clip's "
                f"config for that tag), or to null to run a local {keys}weights file with open_clip's "
                f"defaults for {model}."
            )
        why = "no pretrained tag" if not tag or str(tag).lower() in NO_TAG else f"{tag!r} is not a tag of {model}"
        return TagSettings(
            tag=None,
            quick_gelu=arch_qg,
            mean=tuple(d.mean),
            std=tuple(d.std),
            interpolation=d.interpolation,
            resize_mode=d.resize_mode,
            source=f"open_clip defaults for {model} ({why})",
        )
    return TagSettings(
        tag=P._clean_tag(tag),
        quick_gelu=arch_qg or bool(cfg.get("quick_gelu", False)),
        mean=tuple(cfg.get("mean", d.mean)),
        std=tuple(cfg.get("std", d.std)),
        interpolation=str(cfg.get("interpolation", d.interpolation)),
        resize_mode=str(cfg.get("resize_mode", d.resize_mode)),
        source=f"open_clip {open_clip.__version__} pretrained cfg {model}/{P._clean_tag(tag)}",
    )


def _hf_names(fname: str) -> list[str]:
    """File names open_clip's HF download tries, in its order (a safetensors alternative first)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    fname = fname or HF_WEIGHTS_NAME
    alts = (
        [HF_SAFE_WEIGHTS_NAME]
        if fname == HF_WEIGHTS_NAME
        else ([fname[:-4] + ".safetensors"] if fname.endswith((".bin", ".pth")) else [])
    )
    return alts + [fname]


def _cached_pretrained(model: str, tag: str, keys: str = "backbones.clip.") -> tuple[str | None, list[str], str]:
    """Where open_clip would find ``model``/``tag`` offline: (path or None, places looked, source)."""
    import open_clip
    from open_clip import pretrained as P

    cfg = P.get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise WeightsNotFoundError(
            f"open_clip has no pretrained tag {tag!r} for model {model!r} (known: {known}). "
            f"Set {keys}pretrained to one of those or {keys}weights=/path/to/checkpoint."
        )
    looked: list[str] = []
    hub = cfg.get("hf_hub", "")
    if hub and P.has_hf_hub():
        from huggingface_hub import try_to_load_from_cache

        repo, fname = os.path.split(hub)
        for name in _hf_names(fname):
            looked.append(hf_cache_entry(repo, name))
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit, looked, f"hf://{repo}/{name}"
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked.append(str(local))
        if local.is_file():
            return str(local), looked, url
    return None, looked, (f"hf://{hub}" if hub else url)


def _download(model: str, tag: str, source: str, looked: list[str], keys: str = "backbones.clip.") -> str:
    """open_clip's own downloader (same cache as :func:`_cached_pretrained`) -> the checkpoint FILE."""
    from open_clip import pretrained as P

    try:
        got = P.download_pretrained(P.get_pretrained_cfg(model, tag))
    except Exception as e:  # network, missing file on the hub, checksum mismatch
        raise WeightsNotFoundError(
            f"downloading CLIP weights {model}/{tag} from {source} failed: {e}\n"
            f"  fix: retry with a working connection, or download the checkpoint yourself and pass "
            f"{keys}weights=/path/to/checkpoint (keep {keys}pretrained={tag})"
        ) from e
    if not got or not Path(got).is_file():
        raise WeightsNotFoundError(
            f"open_clip's download of CLIP weights {model}/{tag} from {source} returned {got!r}, not a file.\n"
            f"  looked in: " + "; ".join(looked) + f"\n  fix: pass {keys}weights=/path/to/checkpoint"
        )
    return str(got)


def clip_weights_file(backbone: str, model: str, pretrained: str | None, weights: str | None, keys: str) -> WeightsFile:
    """The open_clip checkpoint of ``model``/``pretrained`` (or the file ``weights``) as
    :meth:`ClipBackbone._resolve_weights` finds it; no network."""
    what = f"open_clip {model}/{pretrained} checkpoint"
    if weights:
        path, found = local_file(weights)
        fix = f"give an existing open_clip checkpoint for {model} as {keys}weights, or unset it to use the tag"
        return WeightsFile(
            backbone, what, "", (path,), f"{keys}weights", found=found, run_downloads=False, fix=fix, given=True
        )
    if not pretrained or str(pretrained).lower() in NO_TAG:
        raise ConfigError(
            f"{keys.rstrip('.')}: neither weights nor a pretrained tag for {model}; set "
            f"{keys}pretrained (e.g. openai) or {keys}weights=/path/to/checkpoint"
        )
    found, looked, source = _cached_pretrained(model, pretrained, keys)
    url = source
    if source.startswith("hf://"):  # found: hf://<org>/<repo>/<file>; else the tag's hf_hub (<org>/<repo>/[file])
        repo, name = os.path.split(source[len("hf://") :])
        url = hf_url(repo, name if found else _hf_names(name)[0])  # the file open_clip's download tries first
    # open_clip checks the sha256 that OpenAI's URLs carry as their last folder (download_pretrained_from_url)
    sha = url.split("/")[-2] if "openaipublic" in url else None

    def download() -> str:
        return ClipBackbone._resolve_weights(model, pretrained, None, keys)

    fix = (
        f"run `python -m tise_bench.weights fetch` (or any run) once with internet to fill open_clip's cache, or "
        f"download the checkpoint and pass {keys}weights=/path/to/checkpoint"
    )
    return WeightsFile(backbone, what, url, tuple(looked), f"{keys}weights", sha, found, download, True, fix)


@dataclass(frozen=True)
class ClipConfig(BackboneConfig):
    """``backbones.clip``; ``weights``: a local open_clip checkpoint instead of the tag's download."""

    model: str = "ViT-B-32"  # any open_clip architecture
    pretrained: str | None = "openai"  # open_clip pretrained tag: the weights and their preprocessing


class OpenClipEmbedder(ImageBackbone):
    """An open_clip model as a backbone: ``image`` = L2-normalised image embeddings, and captions through
    :meth:`encode_text`. Subclasses set ``net``, ``tokenizer``, ``context_length`` and ``n_forward_texts``."""

    provides = ("image",)
    net: Any  # an open_clip model
    device: torch.device
    tokenizer: Any
    context_length: int
    n_forward_texts: int

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.net.encode_image(batch.to(self.device, non_blocking=True))
        return {"image": torch.nn.functional.normalize(emb.float(), dim=-1)}

    def n_tokens(self, text: str) -> int:
        enc = getattr(self.tokenizer, "encode", None)
        return len(enc(text)) + 2 if enc is not None else 0  # +2: start/end tokens

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> (L2-normalised embeddings, truncated flags). Over-long captions are truncated, not fatal."""
        truncated = np.array([self.n_tokens(t) > self.context_length for t in texts], dtype=bool)
        tokens = self.tokenizer(texts).to(self.device)
        self.n_forward_texts += len(texts)
        with self.autocast():
            emb = self.net.encode_text(tokens)
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy(), truncated


def tensor_transform(transform: Any) -> Any:
    """open_clip's image transform as a function of a uint8 ``(3, H, W)`` tensor on any device, or None.

    Its own ``Resize`` and ``CenterCrop`` objects run on the tensor (torchvision's tensor path: the same output
    sizes and crop offsets; bicubic with antialias on float, rounded back to uint8 as PIL does), then ``/255``
    and its ``Normalize``. A transform with any other step (open_clip's ``ResizeKeepRatio`` for
    ``resize_mode=longest``, padding, ...) has no tensor version here: None, and the backbone stays exact."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", None)
    if steps is None:
        return None
    plan: list[Any] = []
    for t in steps:
        kind = type(t).__name__
        if isinstance(t, (T.Resize, T.CenterCrop)):
            plan.append(t)
        elif kind in ("MaybeConvertMode", "MaybeToTensor", "ToTensor") or getattr(t, "__name__", "") in (
            "_convert_to_rgb",
        ):
            continue  # already RGB; the /255 comes below
        elif isinstance(t, T.Normalize):
            plan.append(t)
        else:
            return None
    if not any(isinstance(t, T.Normalize) for t in plan):
        return None

    def run(pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """-> the input; with ``out`` (float, the output's shape) the ``/255`` and the normalisation are written
        there: the same ops in the same order (``Normalize`` subtracts, then divides, in place on its copy)."""
        from torchvision.transforms import functional as TF

        x = pixels
        for t in plan:
            if isinstance(t, T.Normalize):
                if out is None:
                    x = t(x.float() / 255.0)
                else:
                    out.copy_(x).div_(255.0)  # (uint8 -> float in the copy is exact: x.float() / 255.0)
                    x = TF.normalize(out, t.mean, t.std, inplace=True)
            else:
                x = t(x)
        return x

    return run


@register_backbone("clip", config=ClipConfig)
class ClipBackbone(OpenClipEmbedder):
    """open_clip ``model`` with the weights of ``pretrained`` (or the file ``weights``) and the tag's settings.

    Subclasses registered under another name (``clip_cmmd``, ``clip_fid``) reuse the weight resolution; their
    messages name their own config block (``keys``, default ``backbones.<name>.``) and their ident starts
    with that name."""

    amp_capable = True

    def __init__(
        self,
        *,
        model: str = ClipConfig.model,
        pretrained: str | None = ClipConfig.pretrained,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
        quick_gelu: bool | None = None,
        keys: str | None = None,
    ) -> None:
        super().__init__()
        import open_clip

        self.keys = keys = keys or f"backbones.{self.name}."
        self.is_random = random
        self.device = resolve_device(device)
        self.model_name = model
        self.weights_path: str | None = None
        st = tag_settings(model, pretrained, strict=not random, keys=keys)
        if quick_gelu is False and _model_config(model, keys).get("quick_gelu", False):
            raise ConfigError(f"{model} is a QuickGELU architecture; quick_gelu=False cannot be honoured")
        if quick_gelu is not None and quick_gelu != st.quick_gelu:  # explicit override (constructor only)
            st = TagSettings(
                **{
                    **asdict(st),
                    "quick_gelu": bool(quick_gelu),
                    "source": st.source + f"; quick_gelu overridden to {bool(quick_gelu)}",
                }
            )
        self.settings = st
        kw = dict(
            force_quick_gelu=st.quick_gelu,
            image_mean=st.mean,
            image_std=st.std,
            image_interpolation=st.interpolation,
            image_resize_mode=st.resize_mode,
        )
        if random:
            torch.manual_seed(seed)
            net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=None, **kw)
            self.weights_hash = state_dict_sha256(net)
            tag = f"random-seed{seed}"
        else:
            path = self._resolve_weights(model, pretrained, weights, keys)
            try:  # the FILE, never the tag: open_clip would not re-apply the tag's settings to a file anyway
                net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=path, **kw)
            except Exception as e:  # a corrupt or mismatched checkpoint: say which file and what to do
                fix = (
                    f"give a valid open_clip checkpoint for {model} as {keys}weights"
                    if weights
                    else f"it is open_clip's cached download of {model}/{pretrained}: delete {path} so that the next "
                    f"run downloads it again, or pass {keys}weights=/path/to/a/good/checkpoint"
                )
                raise WeightsNotFoundError(f"could not load CLIP weights {path} into {model}: {e}\n  fix: {fix}") from e
            self.weights_path = path
            self.weights_hash = file_sha256(path, cache_dir)
            tag = Path(weights).stem if weights else str(pretrained)
        self.ident = f"{self.name}-{model}-{tag}"
        size = getattr(net.visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.image_size = int(size)
        self.preproc_version = st.version(self.image_size)
        self.net = net.to(self.device).eval()
        self._preprocess = preprocess
        # fast (backbones.preprocess=fast): open_clip's own steps on the uploaded tensor; only for this class's
        # preprocess (clip_cmmd / clip_fid resize their own way and stay exact)
        own = type(self).preprocess is ClipBackbone.preprocess
        self._tensor_preprocess = tensor_transform(preprocess) if own else None
        self.fast_path = self._tensor_preprocess is not None
        self.tokenizer = open_clip.get_tokenizer(model)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77) or 77)
        self.logit_scale = float(net.logit_scale.exp().item())
        self.n_forward_texts = 0

    @staticmethod
    def _resolve_weights(model: str, pretrained: str | None, weights: str | None, keys: str) -> str:
        """-> the checkpoint file: ``weights``, the tag's cached file, or the tag's file downloaded now."""
        if weights:
            p = Path(weights).expanduser()
            if not p.is_file():
                raise WeightsNotFoundError(
                    f"{keys}weights={weights} does not exist. Give a local open_clip checkpoint "
                    f"for {model} (e.g. open_clip_pytorch_model.bin), or unset it to use pretrained={pretrained!r}."
                )
            return str(p)
        if not pretrained or str(pretrained).lower() in NO_TAG:
            raise ConfigError(
                f"{keys.rstrip('.')}: neither weights nor a pretrained tag for {model}; set "
                f"{keys}pretrained (e.g. openai) or {keys}weights=/path/to/checkpoint"
            )
        path, looked, source = _cached_pretrained(model, pretrained, keys)
        if path:
            return path
        host = "huggingface.co" if source.startswith("hf://") else (urlparse(source).hostname or "huggingface.co")
        offline = (os.environ.get("HF_HUB_OFFLINE") == "1" and source.startswith("hf://")) or not host_reachable(host)
        if offline:
            raise WeightsNotFoundError(
                f"CLIP weights for {model}/{pretrained} are not cached and the network is unreachable.\n"
                f"  source: {source}\n  looked in: " + "; ".join(looked) + "\n"
                "  fix: run once with internet to fill the cache, or download the checkpoint and pass "
                f"{keys}weights=/path/to/checkpoint; or use backbones=random for offline smoke runs."
            )
        return _download(model, pretrained, source, looked, keys)

    @classmethod
    def weights_needed(
        cls,
        *,
        model: str = ClipConfig.model,
        pretrained: str | None = ClipConfig.pretrained,
        weights: str | None = None,
        random: bool = False,
        keys: str | None = None,
        **_: Any,
    ) -> list[WeightsFile]:
        """The checkpoint :meth:`_resolve_weights` loads (no network): ``weights``, or the tag's file in
        open_clip's caches (:func:`_cached_pretrained`), downloaded by :func:`_download` when missing."""
        if random:
            return []
        return [clip_weights_file(cls.name, model, pretrained, weights, keys or f"backbones.{cls.name}.")]

    def describe(self) -> dict[str, object]:
        d = super().describe()
        st = self.settings
        d.update(
            model=self.model_name,
            pretrained_tag=st.tag,
            weights_file=self.weights_path,
            quick_gelu=st.quick_gelu,
            image_size=self.image_size,
            mean=list(st.mean),
            std=list(st.std),
            interpolation=st.interpolation,
            resize_mode=st.resize_mode,
            settings_source=st.source,
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self._preprocess(img)

    def preprocess_tensor(self, pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if self._tensor_preprocess is None:
            return super().preprocess_tensor(pixels)
        return self._tensor_preprocess(pixels, out)

    def preprocess_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """open_clip's resize, centre crop and normalisation as torchvision ops on the whole ``(B, 3, H, W)`` batch
        (each works image by image: the rows equal :meth:`preprocess_tensor`'s)."""
        if self._tensor_preprocess is None:
            return super().preprocess_batch(pixels)
        return self._tensor_preprocess(pixels)

    def input_row(self, tensor_path: bool) -> tuple[tuple[int, ...], torch.dtype] | None:
        """Under ``fast`` (open_clip's resize and centre crop: one output size for any image), learnt once from two
        tiny images of different aspect ratios; None if their outputs differ (a transform without a fixed output
        size: each input is then made on its own, as before). The exact path is open_clip's PIL transform, which has
        no ``out``."""
        if not tensor_path or self._tensor_preprocess is None:
            return None
        if not hasattr(self, "_row"):
            a, b = (self._tensor_preprocess(torch.zeros((3, 8, w), dtype=torch.uint8)) for w in (8, 13))
            self._row = (tuple(a.shape), a.dtype) if (a.shape, a.dtype) == (b.shape, b.dtype) else None
        return self._row
