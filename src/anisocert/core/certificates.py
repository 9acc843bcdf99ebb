"""What a certificate is, in one place: the abstain value, the two radii of a region, memory's statuses.

A certificate (prediction, theta, gap) is the region {d : ||d / theta||_p <= gap} around its input on which
the smoothed classifier returns prediction. Torch-free, so memory, verify and the report import it cheaply.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ABSTAIN", "MEMORY_CHANGED", "MEMORY_STATUSES", "proxy_radius", "radius"]

ABSTAIN = -1  # the prediction of an input that is not certified (gap = radius = proxy radius = 0)
MEMORY_STATUSES = ("unchanged", "shrunk", "abstain_inside", "adopted", "abstain")
MEMORY_CHANGED = ("shrunk", "abstain_inside", "adopted")  # the statuses where memory changed the certificate


def radius(min_theta, gap) -> np.ndarray:
    """The largest isotropic l_p ball inside the region: min(theta) * gap (full precision, never rounded)."""
    return np.asarray(min_theta, dtype=np.float64) * np.asarray(gap, dtype=np.float64)


def proxy_radius(geo_mean_theta, gap) -> np.ndarray:
    """The radius of the l_p ball of the region's volume: gap * exp(mean(log theta)) (the n-th root of the
    volume up to the ball's constant)."""
    return np.asarray(geo_mean_theta, dtype=np.float64) * np.asarray(gap, dtype=np.float64)
