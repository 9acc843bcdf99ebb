"""Exhaustive check on a small 2-D grid: with the exact law of the rounded noise (a convolution, no sampling),
no certified region (ball, ellipsoid, cross-polytope) holds a grid point the smoothed classifier labels
otherwise; inflating every radius by 15 % finds such points (the check has power)."""

import numpy as np
import pytest

from anisocert.core.grid import rounded_table
from anisocert.core.noise import get_noise

LEVELS, N = 4, 28  # grid step 1/4, centres k / 4 for k in 0..27 per axis


def _law(family: str, theta: float) -> tuple[int, np.ndarray]:
    """(K, P(m) for m = -K..K): the table's law (what the sampler draws)."""
    t = rounded_table(family, theta, LEVELS)
    return t.K, t.masses.astype(np.float64) / 2.0**62


def _smoothed(labels: np.ndarray, pad: int, laws) -> np.ndarray:
    """P(f(x + D) = 1) for every centre: the labels (on the padded box) convolved with each axis' law."""
    (K0, w0), (K1, w1) = laws
    p = np.apply_along_axis(
        lambda r: np.convolve(r, w0[::-1], mode="valid"), 0, labels[pad - K0 : pad + N + K0]
    )
    p = p[:, pad - K1 : pad + N + K1]
    return np.apply_along_axis(lambda r: np.convolve(r, w1[::-1], mode="valid"), 1, p)


def _labelings(seed: int, pad: int):
    """Random labelings of the padded grid: a random half-plane with label noise, and random blobs."""
    rng = np.random.default_rng(seed)
    z = np.stack(np.meshgrid(*[np.arange(-pad, N + pad)] * 2, indexing="ij"), -1) / LEVELS
    direction = rng.normal(size=2)
    half = (z @ direction - rng.uniform(2, 5) * direction.sum() + 0.3 * rng.normal(size=z.shape[:2])) > 0
    centres = rng.uniform(0, N / LEVELS, size=(4, 2))
    blobs = (np.linalg.norm(z[:, :, None, :] - centres, axis=-1) < rng.uniform(0.5, 2.0, 4)).any(-1)
    return [half.astype(np.float64), blobs.astype(np.float64)]


def _violations(family: str, theta: tuple[float, float], inflate: float, seeds=range(6)) -> int:
    noise = get_noise(family)
    laws = [_law(family, t) for t in theta]
    pad = max(k for k, _ in laws)
    centres = np.stack(np.meshgrid(np.arange(N), np.arange(N), indexing="ij"), -1).reshape(-1, 2) / LEVELS
    scale = np.asarray(theta)
    p_norm = 2 if family == "gaussian" else 1
    found = 0
    for seed in seeds:
        for labels in _labelings(seed, pad):
            p1 = _smoothed(labels, pad, laws).reshape(-1)
            g = (p1 > 0.5).astype(int)
            pA = np.maximum(p1, 1 - p1)
            gap = np.where(pA > 0.5, noise.gap(np.minimum(pA, 1 - 1e-16)), -1.0) * inflate
            d = np.linalg.norm((centres[None, :, :] - centres[:, None, :]) / scale, ord=p_norm, axis=-1)
            # z is a counterexample to x's region when x's class has probability < 1/2 at z (uniform noise
            # has rational probabilities: a point on the region's boundary may tie at exactly 1/2, which the
            # theorem allows); 1e-12 covers the float64 convolution
            own = np.where(g[:, None] == 1, p1[None, :], 1 - p1[None, :])
            found += int(((d <= gap[:, None]) & (own < 0.5 - 1e-12)).sum())
    return found


@pytest.mark.parametrize(
    ("family", "theta"),
    [("gaussian", (0.5, 0.5)), ("gaussian", (0.5, 1.0)), ("uniform", (0.5, 0.5)), ("uniform", (0.75, 1.5))],
)
def test_no_certified_region_holds_a_grid_point_of_another_class(family, theta):
    assert _violations(family, theta, 1.0) == 0
    assert _violations(family, theta, 1.15) > 0
