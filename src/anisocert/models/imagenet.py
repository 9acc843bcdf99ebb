"""ImageNet ResNet-50: torchvision's network (weights=None) behind the ImageNet normalisation.

The torchvision network lives under the attribute ``net``, so its parameters are ``net.conv1.weight``,
..., ``net.fc.bias``. Checkpoints in torchvision's own layout (``conv1.weight``, ``fc.weight``; Cohen et
al., SmoothAdv, DDRS and ANCER, after their ``1.`` / ``module.`` prefixes are removed) are mapped to it
by `load_model`.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50

from ._registry import Normalize, finish_model, register_model

__all__ = ["ImageNetResNet50", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetResNet50(nn.Module):
    """Normalize -> torchvision ResNet-50. Input (B, 3, 224, 224) pixels in [0, 1]; output logits."""

    import_prefix = "net."  # where torchvision-layout keys go

    def __init__(self, num_classes: int = 1000, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = resnet50(weights=None, num_classes=num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(self.normalize(x)))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.net.fc = nn.Linear(self.net.fc.in_features, num_classes)
        self.num_classes = num_classes


@register_model
def imagenet_resnet50(num_classes: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> nn.Module:
    """torchvision ResNet-50 (25.6 M parameters) with the ImageNet normalisation as its first layer."""
    num_classes = num_classes or 1000
    model = ImageNetResNet50(num_classes, mean, std)
    return finish_model(model, num_classes=num_classes, input_shape=(3, 224, 224), mean=mean, std=std)
