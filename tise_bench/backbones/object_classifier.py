"""TISE's object classifier for O-IS and O-FID: torchvision Inception-v3 with an 80-way COCO fc.

TISE fine-tuned Inception-v3 on COCO object crops (``inceptionv3_fine_to_with_80_coco_classes.pth``: the
state dict of ``torchvision.models.inception_v3`` with ``AuxLogits.fc = Linear(768, 80)`` and
``fc = Linear(2048, 80)``) and uses it for both object metrics, each with its own input pipeline
(``object_fidelity/O-IS/object_centric_inception_score.py`` and ``object_fidelity/O-FID/``):

* ``logits`` (O-IS, then divided by T = 2.1737587451934814 by the metric): ``Resize((299, 299))``,
  ``ToTensor()`` ([0, 1]), ``Normalize((0.5,)*3, (0.5,)*3)`` ([−1, 1]), the full network with
  ``transform_input=False``.
* ``pool3`` (O-FID, 2048-d): ``Resize((299, 299))``, ``ToTensor()``, then TISE's ``InceptionV3`` wrapper:
  bilinear resize to 299 with ``align_corners=True`` (identity at 299), its ``normalize_input``
  ``x[:, c] = x[:, c] * (std_c / 0.5) + (mean_c − 0.5) / 0.5`` with ImageNet mean/std, and the trunk up to the
  final average pool after ``Mixed_7c`` (the wrapper's blocks 0–3; ``transform_input`` is bypassed).

Crops arrive as 299×299 uint8 (:mod:`..features.crops`), so ``Resize((299, 299))`` is the identity here and
both inputs are computed exactly as TISE's scripts do from the same 299×299 crop. The checkpoint is not
distributed with any library, so the user provides it (``backbones.object_classifier.weights=<file>``);
without it O-IS and O-FID fall back to inception-v3-compat on the crops and the result says so.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import WeightsNotFoundError
from ..fsutil import CACHE, atomic_write_bytes, torch_save_bytes
from .base import ImageBackbone, file_sha256, resolve_device
from .random_init import calibration_images, kaiming_convs_, orthogonal_fc_, restore_bn_momentum_
from .registry import BackboneConfig, register_backbone
from .weights_file import WeightsFile, local_file

TISE_OBJECT_TEMPERATURE = 2.1737587451934814
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # TISE O-FID inception.py normalize_input
IMAGENET_STD = (0.229, 0.224, 0.225)
TRUNK = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "avgpool",
)  # torchvision Inception3 order up to pool3


def _net(num_classes: int) -> torch.nn.Module:
    from torchvision.models import inception_v3

    with torch.random.fork_rng(devices=[]):  # its default init draws from the global RNG; leave that alone
        return inception_v3(
            weights=None, aux_logits=False, init_weights=False, num_classes=num_classes, transform_input=False
        )


def to_unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,H,W) -> float in [0, 1], as ``transforms.ToTensor``."""
    return batch.float().div(255)


def ois_input(x01: torch.Tensor) -> torch.Tensor:
    """TISE O-IS: ``Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`` on the ToTensor output."""
    return x01.sub(0.5).div(0.5)


def ofid_input(x01: torch.Tensor) -> torch.Tensor:
    """TISE O-FID ``InceptionV3.forward``: resize_input (bilinear, align_corners=True, 299) + normalize_input."""
    x = F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=True)
    x = x.clone()
    for c in range(3):
        x[:, c] = x[:, c] * (IMAGENET_STD[c] / 0.5) + (IMAGENET_MEAN[c] - 0.5) / 0.5
    return x


def pool3(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """2048-d output of the final average pool (after ``Mixed_7c``) of a torchvision Inception3."""
    for name in TRUNK:
        x = getattr(net, name)(x)
    return torch.flatten(x, 1)


@torch.no_grad()
def init_random_inception3(
    net: torch.nn.Module,
    gen: torch.Generator,
    net_input: Callable[[torch.Tensor], torch.Tensor],
    n_calib: int = 4,
    size: int = 299,
) -> None:
    """Seeded, non-collapsing random weights for a torchvision-style Inception3 (same recipe as the random
    inception-v3-compat): Kaiming-normal convs, BatchNorm statistics from a seeded calibration batch (so
    pool3 varies across images), and an fc orthogonal to the mean pool3 feature scaled so that the logits
    spread across images (IS > 1, FID > 0 on distinct image sets). Calibrated on ``n_calib`` seeded images (at the
    input size of the real inputs, few of them, so that building it takes seconds on a CPU)."""
    kaiming_convs_(net, gen, reset_bn_affine=True)
    calib = net_input(calibration_images(gen, n_calib, size))
    net.train()
    for chunk in calib.split(4):
        pool3(net, chunk)
    net.eval()
    restore_bn_momentum_(net)
    feats = torch.cat([pool3(net, c) for c in calib.split(4)]).double()
    orthogonal_fc_(net.fc, feats, gen)


def random_weights_file(cache_dir: str | Path, stem: str, build: Callable[[], torch.nn.Module]) -> Path:
    """Write (once, atomically) the state dict that ``build()`` returns under ``<cache>/weights/<stem>.pth``."""
    out = Path(cache_dir) / "weights" / f"{stem}-torch{torch.__version__.split('+')[0]}.pth"
    if out.is_file():
        return out
    state = build().state_dict()
    return atomic_write_bytes(out, torch_save_bytes(state), CACHE)


def read_state_dict(path: str | Path, key: str, what: str) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (raw, under 'state_dict'/'model'/'net', 'module.' prefixes), read with
    ``weights_only=True``: tensors and plain containers only, so a crafted checkpoint cannot run code. A missing,
    unreadable or code-carrying file (e.g. a whole pickled model) is a :class:`WeightsNotFoundError` naming the
    config key, the file and the fix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"{key}={path} does not exist. Give {what}.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a Python object: a pickled model or other code
        raise WeightsNotFoundError(
            f"{key}={p} holds Python objects besides tensors (e.g. a whole pickled model). tise_bench reads "
            f"checkpoints with torch.load(weights_only=True) so that a file cannot run code.\n  fix: if you trust "
            f"the file, re-save its weights once: torch.save(torch.load(path, weights_only=False).state_dict(), "
            f"'weights.pth'), and give that file; else give {what}."
        ) from None
    except Exception as e:  # truncated / not a torch file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise WeightsNotFoundError(
            f"could not read {key}={p}: {type(e).__name__}: {first}\n"
            f"  the file is corrupt or not a PyTorch checkpoint. fix: give {what}."
        ) from None
    for k in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and k in obj and isinstance(obj[k], dict):
            obj = obj[k]
    if not isinstance(obj, dict):
        raise WeightsNotFoundError(f"{key}={p} holds a {type(obj).__name__}, not a state dict. Give {what}.")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def load_checkpoint(path: str | Path, num_classes: int = 80) -> torch.nn.Module:
    """Load TISE's classifier state dict into torchvision inception_v3 (the unused aux head is dropped)."""
    what = (
        "TISE's COCO-80 Inception-v3 checkpoint (object_fidelity/weights/inceptionv3_fine_to_with_80_coco_"
        "classes.pth), or set it to null to use the flagged inception-v3-compat fallback for O-IS/O-FID"
    )
    sd = read_state_dict(path, "backbones.object_classifier.weights", what)
    sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}  # the aux head is unused
    net = _net(num_classes)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise WeightsNotFoundError(
            f"{path} does not fit torchvision inception_v3 with {num_classes} classes: "
            f"{str(e).splitlines()[-1].strip()}"
        ) from None
    if missing or unexpected:
        raise WeightsNotFoundError(
            f"{path} does not fit torchvision inception_v3 with {num_classes} classes: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return net


def random_object_classifier(num_classes: int, seed: int) -> torch.nn.Module:
    net = _net(num_classes)
    init_random_inception3(net, torch.Generator().manual_seed(seed), lambda u8: ois_input(to_unit(u8)))
    return net.eval()


class LocalClassifierBackbone(ImageBackbone):
    """A TISE classifier that no library ships: a user-given weights file, or a seeded random variant cached
    under ``<cache>/weights`` (smoke tests). Subclasses call :meth:`_setup` from ``__init__``."""

    weights_what: str = ""  # what the user-given file is (listed by ``python -m tise_bench.weights``)
    missing_fix: str = ""  # the error when a real classifier is asked for without a weights file

    @classmethod
    def weights_needed(cls, *, weights: str | None = None, random: bool = False, **_: Any) -> list[WeightsFile]:
        """The user-given file :meth:`_setup` loads (no library ships it: no URL, never downloaded)."""
        if random:
            return []
        key = f"backbones.{cls.name}.weights"
        path, found = local_file(weights) if weights else (f"({key} is not set)", None)
        return [
            WeightsFile(
                cls.name,
                cls.weights_what,
                "",
                (path,),
                key,
                found=found,
                run_downloads=False,
                fix=cls.missing_fix,
                given=bool(weights),
            )
        ]

    def _setup(
        self,
        *,
        weights: str | None,
        random: bool,
        seed: int,
        cache_dir: str | Path,
        device: str,
        stem: str,
        make_random: Callable[[], torch.nn.Module],
        load: Callable[[Path], torch.nn.Module],
        missing: str,
    ) -> None:
        self.is_random = random
        self.device = resolve_device(device)
        if random:
            path = random_weights_file(cache_dir, f"{stem}-random-seed{seed}", make_random)
            self.ident = f"{stem}-random-seed{seed}"
        else:
            if not weights:
                raise WeightsNotFoundError(missing)
            path = Path(weights).expanduser()
            self.ident = f"{stem}-{path.stem}"
        net = load(path)
        self.weights_path = Path(path)
        self.weights_hash = file_sha256(path, cache_dir)
        self.net = net.to(self.device).eval()


@dataclass(frozen=True)
class ObjectClassifierConfig(BackboneConfig):
    """``backbones.object_classifier``: ``weights`` is TISE's file; ``random=true`` its seeded stand-in."""

    num_classes: int = 80  # COCO-80 (TISE's inceptionv3_fine_to_with_80_coco_classes.pth)


@register_backbone("object_classifier", config=ObjectClassifierConfig)
class ObjectClassifierBackbone(LocalClassifierBackbone):
    preproc_version = "tise-ois-pm1+ofid-imagenet-v2"
    provides = ("logits", "pool3")
    weights_what = "TISE's COCO-80 Inception-v3 (inceptionv3_fine_to_with_80_coco_classes.pth)"
    missing_fix = (
        "the object classifier was requested without backbones.object_classifier.weights: give "
        "TISE's COCO-80 Inception-v3 file, or set backbones.object_classifier.random=true for "
        "smoke tests"
    )

    def __init__(
        self,
        *,
        weights: str | None = None,
        num_classes: int = ObjectClassifierConfig.num_classes,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__()
        self._setup(
            weights=weights,
            random=random,
            seed=seed,
            cache_dir=cache_dir,
            device=device,
            stem=f"objcls-inception_v3-{num_classes}",
            make_random=lambda: random_object_classifier(num_classes, seed),
            load=lambda p: load_checkpoint(p, num_classes),
            missing=self.missing_fix,
        )

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            weights=self.weights_path.name,
            temperature=TISE_OBJECT_TEMPERATURE,
            inputs="logits: ToTensor+Normalize(0.5,0.5) (TISE O-IS); pool3: ToTensor+TISE O-FID normalize_input",
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        if img.size != (299, 299):  # TISE: transforms.Resize((299, 299)) (PIL bilinear); crops are already 299
            img = img.resize((299, 299), Image.Resampling.BILINEAR)
        from torchvision.transforms.functional import pil_to_tensor  # imported when a network runs

        return pil_to_tensor(img.convert("RGB"))

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x01 = to_unit(batch.to(self.device))
        return {"logits": self.net(ois_input(x01)), "pool3": pool3(self.net, ofid_input(x01))}
