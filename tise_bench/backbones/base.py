"""Backbone protocol: a network shared by every metric that needs it (metrics never own one).

A backbone turns a decoded PIL image into its own input tensor (its own resize/normalisation) and a
batch of such tensors into named feature arrays. ``namespace`` is the cache key part that says exactly
which network produced a feature: ``{ident}-{weights_hash}-{preproc_version}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..fsutil import CACHE, atomic_write_text


class ImageBackbone(ABC):
    name: str  # config key: "clip", "inception", ...
    ident: str  # architecture + weights tag, e.g. "clip-ViT-B-32-openai"
    weights_hash: str
    preproc_version: str
    provides: tuple[str, ...]
    is_random: bool = False
    #: May run under fp16 autocast on CUDA (CLIP, detector). Inception never does: IS/FID keep fp32 parity
    #: with torch-fidelity.
    amp_capable: bool = False
    amp: bool = False  # set by build_backbone when backbones.amp is on and the device is CUDA
    #: Has a device-side preprocessing (:meth:`preprocess_tensor`) that differs from the PIL one: under
    #: ``backbones.preprocess=fast`` its features get their own cache namespace (``-fast``).
    fast_path: bool = False
    #: The backbone set's ``backbones.preprocess`` (``exact`` | ``fast``), set by build_backbone.
    preprocess_mode: str = "exact"
    #: :meth:`preprocess` returns the decoded RGB pixels as they are, uint8 ``(3, H, W)`` (Inception's input under
    #: torch-fidelity's resize): the bank then hands it the pixels it already made for the ``fast`` paths (the same
    #: values) instead of converting the image again.
    pixels_input: bool = False

    def __init__(self) -> None:
        self.n_forward_images = 0  # counted for the "cached re-run makes zero forwards" guarantee

    @property
    def namespace(self) -> str:
        """Cache key part; fp16 features are another namespace than fp32 ones (they differ in the last bits)."""
        amp = "-amp16" if self.amp else ""
        return f"{self.ident}-{self.weights_hash[:16]}-{self.preproc_version}{amp}{'-fast' if self.fast else ''}"

    @property
    def fast(self) -> bool:
        """Features come from :meth:`preprocess_tensor` (``backbones.preprocess=fast`` and a fast path exists)."""
        return self.preprocess_mode == "fast" and self.fast_path

    def autocast(self):
        """fp16 autocast on CUDA when :attr:`amp` is on, else a no-op context."""
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @abstractmethod
    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """Decoded RGB image -> this backbone's input tensor (C,H,W)."""

    def preprocess_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """``backbones.preprocess=fast``: decoded uint8 RGB ``(3, H, W)`` on any device -> the input tensor.

        Backbones with :attr:`fast_path` resize / normalise with torch on the tensor's device (the bank uploads
        each image once). The default goes back to PIL and :meth:`preprocess`, so it is exact (and used on crops
        for crop backbones without a fast path)."""
        arr = pixels.permute(1, 2, 0).contiguous().cpu().numpy()
        return self.preprocess(Image.fromarray(arr, mode="RGB"))

    def preprocess_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """``backbones.preprocess=fast`` on a device: uint8 ``(B, 3, H, W)`` images of one size -> their inputs
        ``(B, ...)``, row i what :meth:`preprocess_tensor` makes of image i. The default runs that image by image;
        backbones whose tensor preprocessing works on a batch (CLIP's transform, the letterbox, Inception's pixels)
        do it in one go: a few kernel launches per batch instead of a few per image, on the thread that runs the
        forwards."""
        return torch.stack([self.preprocess_tensor(p) for p in pixels])

    def input_row(self, tensor_path: bool) -> tuple[tuple[int, ...], torch.dtype] | None:
        """The ``(shape, dtype)`` of every input this backbone makes, whatever the image, or None (the default:
        the shape depends on the image). A backbone that gives one accepts ``out=`` (its row of a preallocated
        batch) in :meth:`preprocess_tensor` (``tensor_path``: ``preprocess=fast``) or else :meth:`preprocess`,
        writes there exactly the values it would return, and returns ``out``: the bank's input workers then
        preprocess each image straight into its batch row (no per-image tensor, no copy into the batch)."""
        return None

    def preprocess_meta(self, img: Image.Image) -> dict[str, torch.Tensor]:
        """Per-image side information that ``_forward`` needs besides the pixels; none by default.

        A backbone whose input loses something its output must be expressed in (the detector letterboxes
        to a fixed square, but reports boxes in original pixels) returns it here, e.g.
        ``{"orig_size": tensor([w, h])}``. Callers stack each key over the batch and pass the stacks to
        :meth:`forward` as ``meta``; ``_forward`` receives them as keyword arguments.
        """
        return {}

    @abstractmethod
    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch of preprocessed tensors of one shape -> {feature: (B, ...)} on any device.

        Backbones with :meth:`preprocess_meta` add one keyword argument per meta key.
        """

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor, meta: Mapping[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
        """Count, run ``_forward`` (with ``meta`` stacked as from :meth:`preprocess_meta`), return numpy."""
        self.n_forward_images += int(batch.shape[0])
        with self.autocast():
            out = self._forward(batch, **dict(meta or {}))
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def describe(self) -> dict[str, object]:
        fast = {"preprocess": "fast (torch on the device)"} if self.fast else {}  # exact runs: unchanged
        return {
            "ident": self.ident,
            "namespace": self.namespace,
            "weights_hash": self.weights_hash,
            "preproc_version": self.preproc_version,
            "random_weights": self.is_random,
            "features": list(self.provides),
            "amp_fp16": self.amp,
            **fast,
        }


def forward_counts(backbones: Mapping[str, ImageBackbone]) -> dict[str, int]:
    """Images (and texts, for CLIP: ``<name>.text``) each backbone has forwarded so far in this process."""
    out = {n: int(b.n_forward_images) for n, b in backbones.items()}
    for n, b in backbones.items():
        if hasattr(b, "n_forward_texts"):
            out[f"{n}.text"] = int(b.n_forward_texts)
    return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def file_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of a weights file, memoised so big files are hashed once. The memo key is (path, device, inode,
    size, mtime, ctime): a file rewritten in place with the same size and its mtime restored still changes its
    ctime (which no user call can set back), so its hash is recomputed, never served stale."""
    path = Path(path)
    st = path.stat()
    memo = None
    ident = f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    if memo_dir is not None:
        memo = Path(memo_dir) / "weights-hashes" / f"{key}.json"
        if memo.is_file():
            try:
                return json.loads(memo.read_text())["sha256"]
            except (OSError, ValueError, KeyError):
                pass
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        atomic_write_text(memo, json.dumps({"path": str(path), "sha256": digest}), CACHE)
    return digest


def state_dict_sha256(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def offline_requested() -> bool:
    """The one offline switch: ``TISE_OFFLINE=1``, also honouring ``HF_HUB_OFFLINE=1`` (what users of the
    Hugging Face stack already set). When on, no code of ours opens a network connection."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("TISE_OFFLINE", "HF_HUB_OFFLINE"))


def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Quick connectivity probe so offline runs fail in seconds instead of minute-long retries; never probes
    when offline is requested (:func:`offline_requested`)."""
    if offline_requested():
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
