"""Training for anisotropic certificates: Gaussian noise with a random per-pixel scale field (issue 23).

ANCER grows theta_x where the base classifier tolerates noise; a network trained under isotropic noise was
never shown large noise on any pixel. Here each training input that is not in the isotropic share gets the
noise ``theta = sigma * s`` with ``s`` a random field of factors in [1, K] (K = ``aniso_max_scale``),
drawn afresh for every input and step:

- ``pixel``: log-uniform per pixel, ``s = K ** u`` with u ~ U[0, 1] independent per element;
- ``smooth``: u on a coarse grid of ``aniso_grid`` x ``aniso_grid`` cells per channel, upsampled
  bilinearly, then ``s = K ** u`` (a convex combination of exponents in [0, 1], so s stays in [1, K]; log s
  is uniform at the grid points only);
- ``background``: data-dependent, ``s = K ** (u * b)`` with u per pixel as above and
  ``b = 1 - maxpool(x)`` over a (2 * aniso_margin + 1)^2 window: 0 on and next to the strokes (s = 1),
  up to 1 far from them (s log-uniform in [1, K] there).

The first ``round(aniso_iso_fraction * B)`` inputs of each batch (the batch order is random) get plain
isotropic noise ``theta = sigma``, so the ball the isotropic certificate measures is still trained on. With
``aniso_iso_max_scale`` C > 1 each of them gets ``theta = sigma * c`` instead, c log-uniform in [1, C] per
input: the data-dependent sigma_x of the isotropic certificate lies above sigma (on the Gaussian MNIST LeNets,
1.27 sigma on average at sigma 0.5 and 2.3 sigma at 0.25), where a model trained at sigma alone loses
accuracy; C should cover most of that range (the shipped models: 1.8 and 4).
The loss is the mean cross-entropy of f(x + theta * e) over the B inputs, one draw each.

Best combined with the architecture option ``clamp_input`` (``--clamp-input``): the network then sees a
noisy pixel only through clamp(x + e, 0, 1), so noise on a pixel can never push it out of the clean pixels'
range, and a very large theta costs no more than a pixel flipped between black and white.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 (the usual name)

from ..errors import InputError

__all__ = ["FIELDS", "scale_field", "isotropic_count", "anisotropic_theta", "anisotropic_loss"]

FIELDS = ("pixel", "smooth", "background")


def isotropic_count(batch: int, fraction: float) -> int:
    """How many of a batch of `batch` inputs get plain isotropic noise: round(fraction * batch)."""
    return int(math.floor(fraction * batch + 0.5))


def scale_field(
    x: Tensor, *, field: str, max_scale: float, generator: torch.Generator, grid: int = 4, margin: int = 1
) -> Tensor:
    """Random factors s in [1, max_scale] of x's shape (B, *D), on x's device and dtype (see module doc).

    ``smooth`` and ``background`` need image inputs (B, C, H, W); ``pixel`` takes any shape.
    """
    if field != "pixel" and x.ndim != 4:
        raise InputError(
            f"--aniso-field {field} needs image inputs (C, H, W), not inputs of shape {tuple(x.shape[1:])}; "
            "use --aniso-field pixel"
        )
    if field == "smooth":
        coarse = torch.rand(
            (*x.shape[:2], grid, grid), generator=generator, device=x.device, dtype=torch.float32
        )
        exponent = F.interpolate(coarse, size=x.shape[2:], mode="bilinear", align_corners=True)
    else:
        exponent = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        if field == "background":
            near = F.max_pool2d(x.detach().float().clamp(0.0, 1.0), 2 * margin + 1, stride=1, padding=margin)
            exponent = exponent * (1.0 - near)
        else:
            assert field == "pixel", f"unknown field {field!r}"
    return torch.exp(exponent * math.log(max_scale)).clamp(1.0, max_scale).to(x.dtype)


def anisotropic_theta(x: Tensor, sigma: float, config, generator: torch.Generator) -> Tensor:
    """theta (B, *D) for a training batch: sigma (or sigma * c, one c per input) on the first isotropic_count
    inputs, sigma * s after."""
    theta = torch.full_like(x, sigma)
    k = isotropic_count(x.shape[0], config.aniso_iso_fraction)
    c = config.aniso_iso_max_scale
    if k and c > 1:  # no draw at C = 1: the models trained before the option keep their random stream
        u = torch.rand((k,) + (1,) * (x.ndim - 1), generator=generator, device=x.device, dtype=torch.float32)
        theta[:k] = sigma * torch.exp(u * math.log(c)).clamp(1.0, c).to(x.dtype)
    if k < x.shape[0]:
        s = scale_field(
            x[k:],
            field=config.aniso_field,
            max_scale=config.aniso_max_scale,
            generator=generator,
            grid=config.aniso_grid,
            margin=config.aniso_margin,
        )
        theta[k:] = sigma * s
    return theta


def anisotropic_loss(model: nn.Module, x: Tensor, y: Tensor, step) -> Tensor:
    """Cross-entropy of f(x + theta * e), e ~ N(0, I), theta from anisotropic_theta; mean over the B inputs."""
    theta = anisotropic_theta(x, step.theta, step.config, step.generator)
    e = torch.randn(x.shape, generator=step.generator, device=x.device, dtype=x.dtype)
    logits = model(x + theta * e)
    return F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, y)
