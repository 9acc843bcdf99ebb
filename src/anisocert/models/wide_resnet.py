"""WideResNet-40-2 (Zagoruyko & Komodakis) for CIFAR-10, as used by RS4A and ANCER's l1 models.

Pre-activation basic blocks; parameter names equal those of the RS4A and ANCER releases
(``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``, ``fc``), so their
state dicts load by name. The normalisation is the first layer; the output is logits.
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import LinearHead, Normalize, finish_model, register_model
from .resnet_cifar import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["WideBasicBlock", "WideResNet"]


class WideBasicBlock(nn.Module):
    """Pre-activation block: conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut.

    When the width or stride changes, the shortcut is a 1x1 convolution of relu(bn1(x)); otherwise
    it is x itself (the reference's `equalInOut` rule).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = c_in == c_out and stride == 1
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = nn.functional.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(pre)
        return out + shortcut


class _NetworkBlock(nn.Module):
    """A stage of `n` blocks under the attribute `layer` (the reference's key layout)."""

    def __init__(self, n: int, c_in: int, c_out: int, stride: int, drop_rate: float):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                WideBasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, drop_rate)
                for i in range(n)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(LinearHead):
    """Normalize -> conv3x3(16) -> 3 stages of (depth - 4) / 6 blocks, width 16k/32k/64k -> BN-ReLU -> pool -> fc.

    Input (B, 3, 32, 32) pixels in [0, 1]; output (B, num_classes) logits.
    """

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 2,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth={depth} must be 6n + 4 (16, 28, 40)")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = _NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = _NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = _NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # = avg_pool2d(8) of the reference on 32x32 inputs
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.block3(self.block2(self.block1(x)))
        return torch.flatten(self.avgpool(self.relu(self.bn1(x))), 1)


@register_model
def wrn40_2(
    num_classes: int | None = None, drop_rate: float = 0.0, mean=CIFAR10_MEAN, std=CIFAR10_STD
) -> nn.Module:
    """WideResNet-40-2 for CIFAR-10 (2.2 M parameters), the l1 model of RS4A and ANCER."""
    num_classes = num_classes or 10
    model = WideResNet(40, 2, num_classes, drop_rate, mean, std)
    return finish_model(model, num_classes=num_classes, input_shape=(3, 32, 32), mean=mean, std=std)
