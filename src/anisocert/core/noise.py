"""Noise families: Gaussian (l2 ellipsoids) and Uniform (l1 generalized cross-polytopes).

A family is stateless: it holds only conventions. theta is data passed per input, of the input's
shape or broadcastable to it (a scalar theta is the isotropic case). Noise is x + theta * u with
u drawn from the family's unit distribution, so optimisers can reparameterise.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm as _normal

from ..errors import UnknownNameError

__all__ = ["NoiseFamily", "Gaussian", "Uniform", "NOISES", "get_noise"]


class NoiseFamily:
    """Base: unit draws u, the gap of a certified pA_lower, and the certified region's norm."""

    name: str
    norm: str  # "l2" or "l1": the norm of d / theta that the region bounds
    theta_unit: str  # what theta means, recorded with every result

    def unit(self, shape, generator: torch.Generator, device, dtype=torch.float32) -> torch.Tensor:
        """Unit noise u of the given shape; e = theta * u."""
        raise NotImplementedError

    def sample(self, x: torch.Tensor, theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x + theta * u for x of shape (..., *D), theta broadcastable to it; stays on x's device."""
        return x + theta * self.unit(x.shape, generator, x.device, x.dtype)

    def gap(self, pA_lower):
        """Certified gap for pA_lower >= 1/2: region {d : ||d / theta||_p <= gap}. Full precision."""
        raise NotImplementedError

    def surrogate_gap(self, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        """Differentiable gap estimate from the top-two soft probabilities (spec section 5)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(NoiseFamily):
    """e_i ~ N(0, theta_i^2); theta is the standard deviation in input units. Certifies l2 ellipsoids."""

    name, norm, theta_unit = "gaussian", "l2", "standard deviation"

    def unit(self, shape, generator, device, dtype=torch.float32):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def gap(self, pA_lower):
        """Phi^-1(pA_lower): the ellipsoid sum (d_i / theta_i)^2 <= gap^2 (Cohen et al.; Salman et al.)."""
        return _normal.ppf(np.asarray(pA_lower, dtype=np.float64))

    def surrogate_gap(self, p1, p2):
        """Phi^-1(p1) - Phi^-1(p2) with both clamped to [0.001, 0.999]."""
        normal = torch.distributions.Normal(0.0, 1.0)
        return normal.icdf(p1.clamp(0.001, 0.999)) - normal.icdf(p2.clamp(0.001, 0.999))


class Uniform(NoiseFamily):
    """e_i ~ U[-theta_i, theta_i]; theta is the half-width in input units. Certifies l1 cross-polytopes."""

    name, norm, theta_unit = "uniform", "l1", "half-width"

    def unit(self, shape, generator, device, dtype=torch.float32):
        return torch.rand(shape, generator=generator, device=device, dtype=dtype).mul_(2).sub_(1)

    def gap(self, pA_lower):
        """2 (pA_lower - 1/2): the cross-polytope sum |d_i| / theta_i <= gap (Yang et al.)."""
        return 2.0 * (np.asarray(pA_lower, dtype=np.float64) - 0.5)

    def surrogate_gap(self, p1, p2):
        """p1 - p2."""
        return p1 - p2


NOISES: dict[str, NoiseFamily] = {f.name: f for f in (Gaussian(), Uniform())}


def get_noise(name: str | NoiseFamily) -> NoiseFamily:
    """Look a family up by name ('gaussian' for l2, 'uniform' for l1)."""
    if isinstance(name, NoiseFamily):
        return name
    try:
        return NOISES[name]
    except KeyError:
        raise UnknownNameError(f"noise={name!r} is unknown; choose one of {sorted(NOISES)}") from None
