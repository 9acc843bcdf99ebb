"""Base classifiers whose smoothed probabilities are known in closed form (shared by tests)."""

import torch


class Linear2(torch.nn.Module):
    """Two-class linear classifier: logits (-s, s) with s = w . x + b, so f(x) = 1 iff w . x + b > 0."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.register_buffer("w", w.flatten().float())
        self.b = float(b)

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], dim=1)
