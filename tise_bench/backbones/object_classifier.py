"""TISE's object classifier for O-IS: torchvision Inception-v3 with an 80-way COCO fc.

TISE fine-tuned Inception-v3 on COCO object crops and calibrated it with T = 2.1737587451934814. The
checkpoint is not distributed with any library, so the user provides it
(``backbones.object_classifier.weights=<file>``); without it O-IS falls back to inception-v3-compat
logits on the crops and the result says so. Input: the 299×299 uint8 crop scaled to [−1, 1].
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from ..errors import WeightsNotFoundError
from .base import ImageBackbone, file_sha256, resolve_device, state_dict_sha256

TISE_OBJECT_TEMPERATURE = 2.1737587451934814


def _net(num_classes: int) -> torch.nn.Module:
    from torchvision.models import inception_v3

    return inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=num_classes)


def load_checkpoint(path: str | Path, num_classes: int = 80) -> torch.nn.Module:
    """Load a state dict (raw, under 'state_dict'/'model', or with 'module.' prefixes) into the network."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(
            f"backbones.object_classifier.weights={path} does not exist. Give TISE's COCO-80 Inception-v3 "
            f"checkpoint, or set it to null to use the inception-v3-compat fallback for O-IS (flagged).")
    obj = torch.load(p, map_location="cpu", weights_only=False)
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for k in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and k in obj and isinstance(obj[k], dict):
            obj = obj[k]
    sd = {k.removeprefix("module."): v for k, v in obj.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}  # the aux head is unused
    net = _net(num_classes)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise WeightsNotFoundError(f"{p} does not fit torchvision inception_v3 with {num_classes} classes: "
                                   f"{str(e).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise WeightsNotFoundError(f"{p} does not fit torchvision inception_v3 with {num_classes} classes: "
                                   f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net


class ObjectClassifierBackbone(ImageBackbone):
    name = "object_classifier"
    preproc_version = "crop299-pm1-v1"
    provides = ("logits",)

    def __init__(self, *, weights: str | None = None, num_classes: int = 80, random: bool = False, seed: int = 0,
                 cache_dir: str | Path = ".cache", device: str = "auto") -> None:
        super().__init__()
        self.is_random = random
        self.device = resolve_device(device)
        if random:
            torch.manual_seed(seed)
            net = _net(num_classes)
            for m in net.modules():  # same recipe as the random Inception: no collapse
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight)
            self.weights_hash = state_dict_sha256(net)
            self.ident = f"objcls-inception_v3-{num_classes}-random-seed{seed}"
        else:
            if not weights:
                raise WeightsNotFoundError("object classifier requested without backbones.object_classifier.weights")
            net = load_checkpoint(weights, num_classes)
            self.weights_hash = file_sha256(weights, cache_dir)
            self.ident = f"objcls-inception_v3-{num_classes}-{Path(weights).stem}"
        self.net = net.to(self.device).eval()

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return pil_to_tensor(img)  # crops arrive already 299×299

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = batch.to(self.device, dtype=torch.float32) / 127.5 - 1.0
        return {"logits": self.net(x)}
