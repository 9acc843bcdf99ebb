"""Held-out accuracy of a base model, clean and under its training noise (a training check, not a certificate)."""

from __future__ import annotations

import numpy as np
import torch

from ..core.noise import get_noise

__all__ = ["heldout_accuracy", "noisy_accuracy"]


@torch.inference_mode()
def heldout_accuracy(model, dataset, device, *, batch_size: int = 500, workers: int | None = None) -> float:
    """Clean accuracy of the base model on every input of `dataset`, in batches (decoded sets are read by
    `workers` loader processes)."""
    from ..data import iter_batches

    labels = np.asarray(dataset.labels)
    batches = [np.arange(s, min(s + batch_size, len(labels))) for s in range(0, len(labels), batch_size)]
    hits = 0
    for idx, x in zip(batches, iter_batches(dataset, batches, workers=workers), strict=True):
        hits += int((model(x.to(device, torch.float32)).argmax(1).cpu().numpy() == labels[idx]).sum())
    return hits / len(labels)


@torch.inference_mode()
def noisy_accuracy(
    model,
    dataset,
    noise_name: str,
    sigma: float,
    device,
    draws: int = 4,
    *,
    batch_size: int = 500,
    seed: int = 0,
    workers: int | None = None,
) -> float:
    """Accuracy of the base model on noisy held-out inputs, `draws` draws each (a training check, not a
    certificate). sigma is the noise's theta: std (gaussian) or half-width (uniform)."""
    from ..data import iter_batches

    noise = get_noise(noise_name)
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    labels = np.asarray(dataset.labels)
    batches = [np.arange(s, min(s + batch_size, len(labels))) for s in range(0, len(labels), batch_size)]
    hits = 0
    for idx, x in zip(batches, iter_batches(dataset, batches, workers=workers), strict=True):
        x = x.to(device, torch.float32)
        y = torch.as_tensor(labels[idx], device=device)
        for _ in range(draws):
            hits += int((model(noise.sample(x, float(sigma), generator)).argmax(1) == y).sum())
    return hits / (draws * len(labels))
