"""LeNet of the MNIST randomized-smoothing literature (Cohen-style code of Jeong & Shin 2020 and MACER).

conv 20@5x5 -> ReLU -> max-pool 2 -> conv 50@5x5 -> ReLU -> max-pool 2 -> FC 800-500 -> ReLU -> FC 500-10
(431,080 parameters). No input normalisation: inputs are (B, 1, 28, 28) pixels in [0, 1], as in
``smoothing-consistency/code/archs/lenet.py`` (its ``get_normalize_layer`` is the identity for MNIST).
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import LinearHead, finish_model, input_stage, register_model

__all__ = ["LeNet"]


class LeNet(LinearHead):
    """The two-convolution LeNet; outputs logits. Input (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, num_classes: int = 10, clamp_input: bool = False):
        super().__init__()
        self.input_stage = input_stage(clamp_input)
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(800, 500),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(500, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.input_stage(x))


@register_model
def lenet(num_classes: int | None = None, clamp_input: bool = False) -> nn.Module:
    """LeNet for 28x28 grey images (MNIST), no normalisation (identity: mean 0, std 1).

    clamp_input: clamp the (noisy) input to [0, 1] before the first convolution (InputClamp; default off)."""
    num_classes = num_classes or 10
    return finish_model(
        LeNet(num_classes, clamp_input),
        num_classes=num_classes,
        input_shape=(1, 28, 28),
        mean=[0.0],
        std=[1.0],
        normalisation_keys=(),
    )
