"""CIFAR-10 ResNets of the randomized-smoothing literature, with the normalisation as the first layer.

- ``cifar_resnet110`` / ``cifar_resnet20``: the ResNet of He et al. for 32x32 inputs used by Cohen et al.,
  SmoothAdv and MACER (3 stages of 16/32/64 channels, basic blocks, depth 6n + 2, 1x1-conv + BN
  projection shortcuts). Parameter names equal those of Cohen's ``archs/cifar_resnet.py`` and MACER's
  ``model.py``, so their state dicts load by name.
- ``cifar_resnet18``: the usual CIFAR ResNet-18 (3x3 stride-1 stem with BN, no max-pool, 4 stages of
  64..512 channels).
- ``ancer_resnet18``: the ResNet-18 of the released DDRS and ANCER code (an ImageNet-style 7x7 stride-2
  stem *without* BN, then a max-pool). Its state dicts load by name; the released model ends with a
  softmax, which holds no weights and is left out here: every model outputs logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import LinearHead, Normalize, finish_model, register_model

__all__ = ["BasicBlock", "CifarResNet", "ResNet18", "CIFAR10_MEAN", "CIFAR10_STD"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut is `downsample` when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


def _stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(c_in, c_out, stride), *(BasicBlock(c_out, c_out) for _ in range(blocks - 1))
    )


def _init_weights(model: nn.Module) -> None:
    """He-normal convolutions (fan-out), BN weight 1 and bias 0, as in the reference implementations."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CifarResNet(LinearHead):
    """Normalize -> conv3x3(16) -> BN -> ReLU -> 3 stages of (depth - 2) / 6 basic blocks -> pool -> fc.

    Input (B, 3, 32, 32) pixels in [0, 1]; output (B, num_classes) logits.
    """

    def __init__(self, depth: int = 110, num_classes: int = 10, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth={depth} must be 6n + 2 (20, 32, 44, 56, 110)")
        n = (depth - 2) // 6
        self.normalize = Normalize(mean, std)
        self.conv1 = _conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(16, 16, n, 1)
        self.layer2 = _stage(16, 32, n, 2)
        self.layer3 = _stage(32, 64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # = AvgPool2d(8) of the reference on 32x32 inputs
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.avgpool(x), 1)


class ResNet18(LinearHead):
    """Normalize -> stem -> 4 stages of 2 basic blocks (64, 128, 256, 512) -> pool -> fc.

    stem="cifar": conv3x3 stride 1 + BN + ReLU (no max-pool). stem="ancer": conv7x7 stride 2 (no BN)
    + ReLU + max-pool 3/2, as in the released DDRS/ANCER code. Input (B, 3, H, W) in [0, 1].
    """

    def __init__(self, num_classes: int = 10, stem: str = "cifar", mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        if stem == "cifar":
            self.conv1 = _conv3x3(3, 64)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.Identity()
        elif stem == "ancer":
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.Identity()
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"stem={stem!r} must be 'cifar' or 'ancer'")
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(64, 64, 2, 1)
        self.layer2 = _stage(64, 128, 2, 2)
        self.layer3 = _stage(128, 256, 2, 2)
        self.layer4 = _stage(256, 512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _finish(model: nn.Module, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    return finish_model(model, num_classes=num_classes, input_shape=(3, 32, 32), mean=mean, std=std)


@register_model
def cifar_resnet110(num_classes: int | None = None, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> nn.Module:
    """Cohen et al.'s CIFAR-10 ResNet-110 (1.7 M parameters)."""
    num_classes = num_classes or 10
    return _finish(CifarResNet(110, num_classes, mean, std), num_classes, mean, std)


@register_model
def cifar_resnet20(num_classes: int | None = None, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> nn.Module:
    """Cohen et al.'s CIFAR-10 ResNet-20 (0.27 M parameters): the small sibling, for quick runs."""
    num_classes = num_classes or 10
    return _finish(CifarResNet(20, num_classes, mean, std), num_classes, mean, std)


@register_model
def cifar_resnet18(num_classes: int | None = None, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> nn.Module:
    """ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool (11.2 M parameters)."""
    num_classes = num_classes or 10
    return _finish(ResNet18(num_classes, "cifar", mean, std), num_classes, mean, std)


@register_model
def ancer_resnet18(num_classes: int | None = None, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> nn.Module:
    """The DDRS/ANCER release's ResNet-18: 7x7 stride-2 stem without BN, max-pool; logits (no softmax)."""
    num_classes = num_classes or 10
    return _finish(ResNet18(num_classes, "ancer", mean, std), num_classes, mean, std)
