"""Inception-v3 (torch-fidelity ``inception-v3-compat``): pool3 (2048-d) for FID, 1008-way
``logits_unbiased`` for IS / IS*. The image reaches the network as uint8 at its decoded size and is
resized inside by torch-fidelity's TF1-compatible bilinear resize, exactly as ``calculate_metrics``
does, so values match torch-fidelity bit for bit on the same weights file.

Opt-in ``backbones.inception.resize=clean``: clean-fid's "clean" mode instead (GaParmar/clean-fid
``cleanfid/resize.py``, ``make_resizer("PIL", False, "bicubic", (299, 299))``: PIL bicubic on float32, per
channel, see :mod:`.clean_resize`). The float 299 × 299 image in [0, 255] then goes through torch-fidelity's
network unchanged from its normalisation ``(x − 128) / 128`` on (clean-fid's torchscript Inception, the same TF
2015 graph, normalises the same way and does not resize a 299 × 299 input). Another cache namespace and
another ``ident`` (``…-clean``: reference statistics of the default resize are refused), recorded in every
Inception metric's comparability fields and protocol.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, WeightsNotFoundError
from ..fsutil import CACHE, atomic_write_bytes, torch_save_bytes
from .base import ImageBackbone, file_sha256, host_reachable, resolve_device
from .clean_resize import CLEAN_FID_SIZE, clean_resize
from .random_init import calibration_images, kaiming_convs_, orthogonal_fc_, restore_bn_momentum_
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, local_file

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FILENAME = URL.rsplit("/", 1)[1]
#: torch hub's convention: the file name ends with the first hex digits of the file's sha256 (``check_hash``)
PUBLISHED_SHA256_PREFIX = FILENAME.rsplit("-", 1)[1].split(".")[0]
_FEATURES = {"pool3": "2048", "logits_unbiased": "logits_unbiased"}
#: ``backbones.inception.resize`` -> its cache-namespace part; the default's is the namespace of every earlier run
RESIZES = {"torch_fidelity": "tf1bilinear299-v1", "clean": "cleanfid-pilbicubicf32-299-v1"}


def _fidelity_cls():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


def random_inception_weights(cache_dir: str | Path, seed: int = 0) -> Path:
    """Write (once) a seeded random state dict of the inception-v3-compat architecture.

    Convs get Kaiming-normal and the fc a small normal init: with PyTorch's default init the deep
    stack's activations shrink towards a constant and FID/IS collapse to 0/1.
    """
    out = (
        Path(cache_dir)
        / "weights"
        / f"inception-v3-compat-random-seed{seed}-torch{torch.__version__.split('+')[0]}.pth"
    )
    if out.is_file():
        return out

    net = _architecture(["2048"])
    gen = torch.Generator().manual_seed(seed)
    _init_random(net, gen)
    return atomic_write_bytes(out, torch_save_bytes(net.state_dict()), CACHE)


@torch.no_grad()
def _init_random(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Kaiming-normal convs, BN statistics from a seeded calibration batch (data-dependent init, so
    pool3 varies across images), and an fc orthogonal to the mean feature scaled so the 1008 logits
    spread across images: IS > 1 and FID > 0 on distinct image sets, as with real weights."""
    kaiming_convs_(net, gen, zero_bias=False)
    calib = calibration_images(gen)
    net.train()
    for chunk in calib.split(16):
        net(chunk)
    net.eval()
    restore_bn_momentum_(net)
    extractor: Any = net  # torch-fidelity's FeatureExtractorInceptionV3 (plain attribute features_list)
    old = extractor.features_list
    extractor.features_list = ["2048"]
    feats = torch.cat([net(c)[0] for c in calib.split(16)]).double()
    extractor.features_list = old
    orthogonal_fc_(net.fc, feats, gen)


def hub_path() -> Path:
    """Where torch hub keeps (and :func:`find_real_weights` looks for / downloads) torch-fidelity's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FILENAME


def find_real_weights(weights: str | None) -> Path:
    """Local file if given, else torch hub's cache, else download if online; offline: a clear error."""
    if weights:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(
                f"backbones.inception.weights={weights} does not exist. Give the path of torch-fidelity's "
                f"'{FILENAME}' (download it from {URL})."
            )
        return p
    hub = hub_path()
    if hub.is_file():
        return hub
    if not host_reachable("github.com"):
        raise WeightsNotFoundError(
            f"Inception weights '{FILENAME}' not found and the network is unreachable.\n"
            f"  looked in: {hub}\n"
            f"  fix: download {URL} on a machine with internet and either copy it to {hub} or pass "
            f"backbones.inception.weights=/path/to/{FILENAME}; or run offline smoke tests with backbones=random."
        )
    hub.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(URL, str(hub), progress=False)
    return hub


def _architecture(features: list[str]) -> torch.nn.Module:
    """torch-fidelity's inception-v3-compat layers, built without reading any weights file (its constructor
    unpickles the file it is given with ``weights_only=False``: it gets an in-memory empty dict instead)."""
    cls = _fidelity_cls()

    class _Arch(cls):  # type: ignore[misc, valid-type]
        def load_state_dict(self, state_dict, strict=True, assign=False):  # the empty dict: keep the layers
            if state_dict == {}:
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Arch("inception-v3-compat", features, feature_extractor_weights_path=empty)


def _load_fidelity(path: Path, random: bool) -> torch.nn.Module:
    """torch-fidelity's network with the weights file, read with ``weights_only=True`` (tensors only: a crafted
    file in a shared cache cannot run code); a file that cannot be loaded is a clear error naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = _architecture(list(_FEATURES.values()))
        net.load_state_dict(state)  # strict: every layer of inception-v3-compat, nothing else
        return net.eval()
    except Exception as e:  # truncated download, wrong file, pickled code: torch.load / load_state_dict errors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        fix = (
            "delete it (it is rebuilt on the next run)"
            if random
            else f"delete it and download {URL} again (or copy a good copy there), or pass "
            f"backbones.inception.weights=/path/to/{FILENAME}"
        )
        raise WeightsNotFoundError(
            f"could not load Inception weights {path}: {type(e).__name__}: {first}\n"
            f"  the file is corrupt (e.g. an interrupted download) or not torch-fidelity's '{FILENAME}'.\n"
            f"  fix: {fix}."
        ) from None


@dataclass(frozen=True)
class InceptionConfig(BackboneConfig):
    """``backbones.inception``: ``weights`` (torch-fidelity's file; null = torch hub cache/download) and
    ``resize``."""

    resize: str = "torch_fidelity"  # torch_fidelity (TF1-compatible bilinear) | clean (clean-fid: PIL bicubic, float)


@register_backbone("inception", config=InceptionConfig)
class InceptionBackbone(ImageBackbone):
    provides = ("pool3", "logits_unbiased")

    def __init__(
        self,
        *,
        weights: str | None = None,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
        resize: str = InceptionConfig.resize,
    ) -> None:
        super().__init__()
        if resize not in RESIZES:
            raise ConfigError(
                f"backbones.inception.resize={resize!r}: valid values are {', '.join(RESIZES)} (torch_fidelity: "
                f"torch-fidelity's TF1-compatible bilinear resize inside the network; clean: clean-fid's PIL "
                f"bicubic resize on float32)"
            )
        self.resize = resize
        self.preproc_version = RESIZES[resize]
        self.is_random = random
        path = random_inception_weights(cache_dir, seed) if random else find_real_weights(weights)
        self.weights_path = path
        self.weights_hash = file_sha256(path, cache_dir)
        if not random and not self.weights_hash.startswith(PUBLISHED_SHA256_PREFIX):
            raise WeightsNotFoundError(
                f"Inception weights {path} have sha256 {self.weights_hash[:16]}…, not that of torch-fidelity's "
                f"published '{FILENAME}' ({PUBLISHED_SHA256_PREFIX}…): the file is corrupt (e.g. an interrupted "
                f"download), altered, or another network's weights, and would silently change every IS / FID.\n"
                f"  fix: delete it and download {URL} again, or pass "
                f"backbones.inception.weights=/path/to/{FILENAME}."
            )
        self.ident = f"inception-v3-compat-{'random-seed%d' % seed if random else 'tf2015'}"
        if resize == "clean":  # other pixels reach the network: reference statistics must not be shared
            self.ident += "-clean"
        self.device = resolve_device(device)
        self.net = _load_fidelity(path, random).to(self.device).eval()

    @classmethod
    def weights_needed(cls, *, weights: str | None = None, random: bool = False, **_: Any) -> list[WeightsFile]:
        """torch-fidelity's file as :func:`find_real_weights` finds it (no network); its sha256 must start with
        :data:`PUBLISHED_SHA256_PREFIX` (checked by the loader too)."""
        if random:
            return []
        fix = f"download {URL} and copy it to {hub_path()} or pass backbones.inception.weights=/path/to/{FILENAME}"
        hub = hub_path()
        path, found = local_file(weights) if weights else (str(hub), str(hub) if hub.is_file() else None)
        download = None if weights else (lambda: str(find_real_weights(None)))  # the loader's: torch hub, to ``hub``
        what, key = "torch-fidelity inception-v3-compat weights", "backbones.inception.weights"
        return [
            WeightsFile(
                "inception",
                what,
                URL,
                (path,),
                key,
                PUBLISHED_SHA256_PREFIX,
                found,
                download,
                not weights,
                fix,
                given=bool(weights),
            )
        ]

    @property
    def pixels_input(self) -> bool:  # type: ignore[override]
        return self.resize != "clean"

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        if self.resize == "clean":  # float32 (3, 299, 299) in [0, 255], clean-fid's resize
            return torch.from_numpy(clean_resize(img, CLEAN_FID_SIZE).transpose(2, 0, 1).copy())
        # uint8 (3,H,W), resized to 299 inside the network; a view of one copy (pil_to_tensor's values, one copy
        # fewer: the batch's torch.stack makes it contiguous)
        return torch.from_numpy(np.array(img.convert("RGB") if img.mode != "RGB" else img)).permute(2, 0, 1)

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["weights"] = self.weights_path.name
        d["resize"] = (
            "clean-fid clean: PIL bicubic on float32 per channel to 299x299 (cleanfid/resize.py)"
            if self.resize == "clean"
            else "torch-fidelity: TF1-compatible bilinear to 299x299 inside the network"
        )
        return d

    def preprocess_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """The uint8 tensor itself (what :meth:`preprocess` makes of the PIL image: the same values, so ``fast``
        changes nothing here); clean-fid's resize is PIL's, so ``resize=clean`` goes through it."""
        if self.resize == "clean":
            return super().preprocess_tensor(pixels)
        return pixels

    def preprocess_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.resize == "clean":
            return super().preprocess_batch(pixels)
        return pixels

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = batch.to(self.device, non_blocking=True)
        feats = self._forward_resized(batch) if self.resize == "clean" else self.net(batch)
        return {k: f for k, f in zip(_FEATURES, feats)}

    def _forward_resized(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """torch-fidelity's forward on an already resized float (B, 3, 299, 299) image in [0, 255].

        Its forward takes uint8 only and resizes first; a pre-hook on its first convolution hands that layer
        ``(pixels − 128) / 128`` (torch-fidelity's own normalisation, bit-exact to the graph's
        ``(x − 128) · 0.0078125``) instead of the normalised placeholder, so every later step is its code.
        """
        if pixels.dtype != torch.float32 or tuple(pixels.shape[1:]) != (3, 299, 299):
            raise ValueError(
                f"clean resize: expected float32 (B, 3, 299, 299), got {pixels.dtype} {tuple(pixels.shape)}"
            )
        net: Any = self.net
        x = (pixels - 128) / 128

        def feed(_module: torch.nn.Module, _args: tuple) -> tuple[torch.Tensor]:
            return (x,)

        handle = net.Conv2d_1a_3x3.register_forward_pre_hook(feed)
        try:
            return net(torch.zeros(pixels.shape, dtype=torch.uint8, device=pixels.device))
        finally:
            handle.remove()
