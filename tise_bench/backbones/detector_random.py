"""Seeded random-weights detector for offline smoke runs.

ultralytics' own init of a fresh ``DetectionModel`` is unusable here: PyTorch's default conv init shrinks
activations through the ~60 layers until the class-head input underflows to exactly 0, so every anchor
gets the same score sigmoid(prior bias) ≈ 1.6e-4 and nothing passes any threshold. So, as for the random
Inception: Kaiming-normal convs, BatchNorm statistics from a seeded calibration batch, then a
data-dependent class head: each class logit is standardised over the calibration anchors and shifted so
that about :data:`TARGET_PER_IMAGE` anchors per calibration image score ≥ 0.5. Boxes and classes are noise,
but downstream metrics (SOA, O-IS/O-FID crops, CA) run end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .random_init import calibration_images, kaiming_convs_, restore_bn_momentum_

TARGET_PER_IMAGE = 16  # anchors per calibration image above score 0.5 (before NMS)
N_CALIB = 8
N_PCS = 3  # principal directions of the per-image mean features removed from the class head


def coco80_names() -> dict[int, str]:
    import yaml

    import ultralytics

    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
    return {int(k): str(v) for k, v in yaml.safe_load(path.read_text())["names"].items()}


def random_weights_file(cache_dir: str | Path, arch: str, seed: int, imgsz: int) -> Path:
    """Where the calibrated random state dict of ``arch`` is kept (torch and ultralytics versions in the name: their
    init code draws the weights)."""
    from importlib import metadata

    versions = f"torch{torch.__version__.split('+')[0]}-ultralytics{metadata.version('ultralytics')}"
    name = f"detector-{Path(arch).stem}-random-seed{seed}-imgsz{imgsz}-calib-v1-{versions}.pth"
    return Path(cache_dir) / "weights" / name


def random_detector(
    arch: str, seed: int, imgsz: int, cache_dir: str | Path | None = None
) -> tuple[torch.nn.Module, dict[int, str]]:
    """-> (eval-mode DetectionModel of ``arch`` with seeded, calibrated random weights, COCO-80 names).

    A segmentation architecture (``yolov8n-seg.yaml``: a ``-seg`` model yaml) gives a SegmentationModel, whose
    random mask head is left as initialised (its masks are noise, as its boxes). With ``cache_dir`` the calibrated
    state dict is written once to :func:`random_weights_file` and later processes load it (the same tensors, so the
    same ``weights_hash`` and namespace) instead of calibrating again (~8 s on 2 CPU cores)."""
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    names = coco80_names()
    saved = random_weights_file(cache_dir, arch, seed, imgsz) if cache_dir is not None else None
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        try:
            model_cls = SegmentationModel if Path(arch).stem.endswith("-seg") else DetectionModel
            net = model_cls(arch, nc=len(names), verbose=False)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"backbones.detector.arch={arch}: no such ultralytics model yaml ({e}); use e.g. yolov8n.yaml"
            ) from e
        if saved is not None and saved.is_file():
            net.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
            restore_bn_momentum_(net, 0.03)  # an attribute, not in the state dict
        else:
            gen = torch.Generator().manual_seed(seed)
            _init_random(net, gen, imgsz)
            if saved is not None:
                from ..fsutil import CACHE, atomic_write_bytes, torch_save_bytes

                atomic_write_bytes(saved, torch_save_bytes(net.state_dict()), CACHE)
    net.names = names
    return net.eval(), names


@torch.no_grad()
def _init_random(net: torch.nn.Module, gen: torch.Generator, imgsz: int) -> None:
    kaiming_convs_(net, gen, trainable_only=True)  # DFL's fixed arange conv is frozen
    calib = calibration_images(gen, n=N_CALIB, size=imgsz).float() / 255.0
    net.train()
    for chunk in calib.split(4):
        net(chunk)
    net.eval()
    restore_bn_momentum_(net, 0.03)
    _calibrate_class_head(net, calib)


def _calibrate_class_head(net: torch.nn.Module, calib: torch.Tensor) -> None:
    """Make class logits follow local structure, standardise them, and shift so a few anchors pass 0.5.

    Random features differ between images mostly by a global offset (overall colour/contrast), which would
    light up every anchor of some images and none of others; so each class weight is projected orthogonal
    to the mean feature and the top principal directions of the per-image mean features.
    """
    layers: Any = net.model  # ultralytics' DetectionModel.model: an nn.Sequential, untyped for mypy
    head: Any = layers[-1]  # its Detect head
    cls_convs = [seq[-1] for seq in head.cv3]
    inputs: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, i, _o: inputs.append(i[0].flatten(2))) for c in cls_convs]
    try:
        net(calib)
    finally:
        for hk in hooks:
            hk.remove()
    zs = []
    for c, h in zip(cls_convs, inputs):  # h: (N, C, anchors)
        per_image = h.mean(2)
        centred = per_image - per_image.mean(0, keepdim=True)
        pcs = torch.linalg.svd(centred, full_matrices=False).Vh[:N_PCS]
        basis = torch.linalg.qr(torch.cat([per_image.mean(0, keepdim=True), pcs]).T).Q  # (C, 1 + N_PCS)
        w = c.weight[:, :, 0, 0]
        c.weight.copy_((w - (w @ basis) @ basis.T)[:, :, None, None])
        zs.append(torch.einsum("kc,nca->nka", c.weight[:, :, 0, 0], h))
    z = torch.cat(zs, dim=2)  # (N, nc, all anchors), before bias
    mean, std = z.mean(dim=(0, 2)), z.std(dim=(0, 2)).clamp_min(1e-12)
    zs_all = (z - mean[None, :, None]) / std[None, :, None]
    tau = zs_all.flatten().topk(max(1, TARGET_PER_IMAGE * calib.shape[0])).values[-1]
    for c in cls_convs:
        c.weight.div_(std[:, None, None, None])
        c.bias.copy_(-mean / std - tau)
