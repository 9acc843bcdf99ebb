"""The self-test's base classifier with a known smoothed probability: a linear two-class model."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Linear2"]


class Linear2(torch.nn.Module):
    """Two classes, logits (-s, s) with s = w.z + b: f(z) = 1 iff w.z + b > 0. Under Gaussian noise of
    std theta its smoothed probability is exact: Phi(|w.x + b| / ||theta * w||)."""

    def __init__(self, w: np.ndarray, b: float):
        super().__init__()
        self.register_buffer("w", torch.from_numpy(np.asarray(w, dtype=np.float32)))
        self.register_buffer("b", torch.tensor(float(b), dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = z.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], dim=1)
