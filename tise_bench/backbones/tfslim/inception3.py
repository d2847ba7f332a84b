"""TF-slim's Inception-v3 as a torchvision ``Inception3`` (TISE's CUB bird classifier, :mod:`..bird_classifier`).

Its own module so that torchvision (imported by these class definitions) is imported only when the network is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from ..bird_classifier import CUB_CLASSES


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF ``avg_pool`` 3×3, stride 1, SAME: padded positions are not counted in the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _TFInceptionA(InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))]


class _TFInceptionC(InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for m in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = m(d)
        return [self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))]


class _TFInceptionE(InceptionE):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        return [self.branch1x1(x), b3, d, self.branch_pool(_tf_avg_pool(x))]


class TFSlimInception3(Inception3):
    """torchvision's Inception3 with TF-slim's average pools (padding excluded); keys as torchvision's."""

    def __init__(self, num_classes: int = CUB_CLASSES + 1) -> None:
        from torchvision.models.inception import BasicConv2d, InceptionAux, InceptionB, InceptionD

        with torch.random.fork_rng(devices=[]):
            super().__init__(
                num_classes=num_classes,
                aux_logits=False,
                transform_input=False,
                init_weights=False,
                inception_blocks=[
                    BasicConv2d,
                    _TFInceptionA,
                    InceptionB,
                    _TFInceptionC,
                    InceptionD,
                    _TFInceptionE,
                    InceptionAux,
                ],
            )
