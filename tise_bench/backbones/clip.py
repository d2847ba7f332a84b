"""CLIP via open_clip: L2-normalised image embeddings (``image``) and caption embeddings.

Any open_clip architecture; weights from a pretrained tag (open_clip's own download + cache), a local
file, or ``random`` (same architecture, seeded init) for offline tests. Image preprocessing is
open_clip's own transform for that model, applied to the already-decoded PIL image.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import WeightsNotFoundError
from .base import ImageBackbone, file_sha256, host_reachable, resolve_device, state_dict_sha256


def _cached_pretrained(model: str, tag: str) -> tuple[str | None, list[str], str]:
    """Where open_clip would find ``model``/``tag`` offline: (path or None, places looked, source)."""
    import open_clip
    from open_clip import pretrained as P

    cfg = P.get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise WeightsNotFoundError(
            f"open_clip has no pretrained tag {tag!r} for model {model!r} (known: {known}). "
            f"Set backbones.clip.pretrained to one of those or backbones.clip.weights=/path/to/checkpoint."
        )
    looked: list[str] = []
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            try_to_load_from_cache = None
        repo, fname = os.path.split(hub)
        for name in ([fname] if fname else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]):
            looked.append(f"huggingface cache: {repo}/{name}")
            if try_to_load_from_cache is not None:
                hit = try_to_load_from_cache(repo, name)
                if isinstance(hit, str):
                    return hit, looked, f"hf://{repo}/{name}"
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked.append(str(local))
        if local.is_file():
            return str(local), looked, url
    return None, looked, hub or url


class ClipBackbone(ImageBackbone):
    name = "clip"
    provides = ("image",)
    amp_capable = True

    def __init__(self, *, model: str = "ViT-B-32", pretrained: str = "openai", weights: str | None = None,
                 random: bool = False, seed: int = 0, cache_dir: str | Path = ".cache", device: str = "auto",
                 quick_gelu: bool | None = None) -> None:
        super().__init__()
        import open_clip

        self.is_random = random
        self.device = resolve_device(device)
        self.model_name = model
        if quick_gelu is None:  # OpenAI checkpoints were trained with QuickGELU
            quick_gelu = pretrained == "openai"
        if random:
            torch.manual_seed(seed)
            net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=None, force_quick_gelu=quick_gelu)
            self.weights_hash = state_dict_sha256(net)
            tag = f"random-seed{seed}"
        else:
            path = self._resolve_weights(model, pretrained, weights)
            try:
                net, _, preprocess = open_clip.create_model_and_transforms(
                    model, pretrained=path, force_quick_gelu=quick_gelu)
            except Exception as e:  # a corrupt or mismatched checkpoint: say which file
                raise WeightsNotFoundError(f"could not load CLIP weights {path} into {model}: {e}") from e
            self.weights_hash = file_sha256(path, cache_dir)
            tag = Path(weights).stem if weights else pretrained
        self.ident = f"clip-{model}-{tag}"
        size = getattr(net.visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preproc_version = f"openclip{size}-v1"
        self.net = net.to(self.device).eval()
        self._preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77) or 77)
        self.logit_scale = float(net.logit_scale.exp().item())
        self.n_forward_texts = 0

    @staticmethod
    def _resolve_weights(model: str, pretrained: str, weights: str | None) -> str:
        if weights:
            p = Path(weights).expanduser()
            if not p.is_file():
                raise WeightsNotFoundError(
                    f"backbones.clip.weights={weights} does not exist. Give a local open_clip checkpoint "
                    f"for {model} (e.g. open_clip_pytorch_model.bin), or unset it to use pretrained={pretrained!r}."
                )
            return str(p)
        path, looked, source = _cached_pretrained(model, pretrained)
        if path:
            return path
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not host_reachable("huggingface.co")
        if offline:
            raise WeightsNotFoundError(
                f"CLIP weights for {model}/{pretrained} are not cached and the network is unreachable.\n"
                f"  source: {source}\n  looked in: " + "; ".join(looked) + "\n"
                f"  fix: run once with internet to fill the cache, or download the checkpoint and pass "
                f"backbones.clip.weights=/path/to/checkpoint; or use backbones=random for offline smoke runs."
            )
        return pretrained  # online: let open_clip download and cache it

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self._preprocess(img)

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
