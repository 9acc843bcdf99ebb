"""The digits CNN: a small network for scikit-learn's 8x8 handwritten digits (1.3 MMAC per sample)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN", "DIGITS_MEAN", "DIGITS_STD"]

# Pixel statistics of the digits training split in [0, 1] space (normalisation lives inside the model).
DIGITS_MEAN = 0.3076
DIGITS_STD = 0.3748


class DigitsCNN(nn.Module):
    """Normalise -> conv(32) -> conv(64) -> max-pool -> fc(128) -> fc(num_classes); outputs logits.

    Input: (B, 1, 8, 8) pixels in [0, 1] (noise is added in that space).
    """

    def __init__(self, num_classes: int = 10, mean: float = DIGITS_MEAN, std: float = DIGITS_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, 1, 1, 1))
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes)
        )
        self.input_stage = nn.Identity()  # digits_cnn(clamp_input=True) puts an InputClamp here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((self.input_stage(x) - self.mean) / self.std))
