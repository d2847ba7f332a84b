"""The seeded random-weights recipe shared by the random backbones (Inception, object/bird classifiers, detector).

PyTorch's default init makes a deep conv stack's activations shrink towards a constant, so features collapse
(FID 0, IS 1). The recipe: Kaiming-normal convs (:func:`kaiming_convs_`), BatchNorm statistics from a seeded
batch of structured images (:func:`calibration_images`, run by the caller in train mode), and a classifier head
orthogonal to the mean feature, scaled so its logits spread across images (:func:`orthogonal_fc_`).
Everything draws from one ``torch.Generator`` in a fixed order, so a seed gives the same weights every time.
"""

from __future__ import annotations

import torch


def calibration_images(gen: torch.Generator, n: int = 48, size: int = 96) -> torch.Tensor:
    """Seeded structured images (smooth colour fields + rectangles), uint8 (n, 3, size, size), used only to
    set BN statistics."""
    low = torch.rand(n, 3, 6, 6, generator=gen)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    for i in range(n):
        for _ in range(3):
            y0, x0 = (torch.randint(0, size - 8, (2,), generator=gen)).tolist()
            h, w = (torch.randint(8, size // 2, (2,), generator=gen)).tolist()
            x[i, :, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=gen)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def kaiming_convs_(
    net: torch.nn.Module,
    gen: torch.Generator,
    *,
    zero_bias: bool = True,
    reset_bn_affine: bool = False,
    trainable_only: bool = False,
) -> None:
    """Kaiming-normal weights for every Conv2d (module order; ``trainable_only`` skips frozen convs such as
    YOLO's DFL), biases zeroed; BatchNorm running statistics reset (and its affine parameters with
    ``reset_bn_affine``) with ``momentum=None`` so the calibration batch sets a cumulative average."""
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d) and (m.weight.requires_grad or not trainable_only):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            m.weight.copy_(torch.empty_like(m.weight).normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen))
            if zero_bias and m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, torch.nn.BatchNorm2d):
            if reset_bn_affine:
                m.reset_parameters()
            else:
                m.reset_running_stats()
            m.momentum = None


def restore_bn_momentum_(net: torch.nn.Module, momentum: float = 0.1) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = momentum


@torch.no_grad()
def orthogonal_fc_(fc: torch.nn.Module | torch.Tensor, feats: torch.Tensor, gen: torch.Generator) -> None:
    """Gaussian head weights projected orthogonal to the mean of ``feats`` (float64, (N, D)) and scaled so the
    logits have std 2 across the calibration images; bias zero."""
    assert isinstance(fc, torch.nn.Linear), f"expected the network's Linear head, got {type(fc).__name__}"
    mean = feats.mean(0)
    w = torch.empty(fc.weight.shape, dtype=torch.float64).normal_(0.0, 1.0, generator=gen)
    w -= (w @ mean)[:, None] * mean[None, :] / mean.dot(mean)
    spread = ((feats - mean) @ w.T).std().clamp_min(1e-12)
    fc.weight.copy_((w * (2.0 / spread)).float())
    fc.bias.zero_()
