"""Selftest group ``float``: the false-certification rate of the exact sampler (noise rounded to the grid).

Base classifier f(z) = 1 iff z_0 > c with c = (k + 1/2) / L halfway between two grid values, so that
f o round = f: the smoothed classifier of f o round under the continuous noise, which is what the exact
sampler's draws average, has the linear closed forms (P = Phi((x_0 - c) / theta_0), or the uniform's clip),
and the true gap is |x_0 - c| / theta_0. x is on the grid, theta per coordinate (or one value), each drawn
from its own table: T certifications in one batched call, each copy with its own noise stream.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import binom, norm

from ..core.exact import ExactSampler
from ..core.smooth import ABSTAIN, Smoothed
from ._linear import Linear2

__all__ = ["FLOAT_CASES", "exact_false_rate"]

LEVELS = 255
FLOAT_CASES = (("gaussian", False), ("gaussian", True), ("uniform", False), ("uniform", True))


def _problem(noise: str, anisotropic: bool, p: float, rng, dim: int):
    """(model, x, theta, label, exact p, true gap): x on the grid, P(f(x + D) = 1) = p up to theta's float32."""
    k = rng.integers(64, 192, dim)
    x = (torch.from_numpy(k).float() / LEVELS).numpy()
    threshold = (int(k[0]) - 20 + 0.5) / LEVELS  # x_0 lies 20.5 grid steps above the boundary
    margin = float(x[0]) - threshold
    scale = norm.ppf(p) if noise == "gaussian" else 2.0 * p - 1.0
    theta = np.full(dim, margin / scale, dtype=np.float32)
    if anisotropic:
        theta[1:] = rng.uniform(0.5, 2.0, dim - 1) * theta[0]
    t0 = float(theta[0])
    exact = norm.cdf(margin / t0) if noise == "gaussian" else min(1.0, (margin + t0) / (2.0 * t0))
    w = np.zeros(dim, dtype=np.float32)
    w[0] = 1.0
    return Linear2(w, -threshold), torch.from_numpy(x), torch.from_numpy(theta), 1, float(exact), margin / t0


def exact_false_rate(
    noise: str, anisotropic: bool, trials: int, n: int, alpha: float, seed: int, dim: int = 2
):
    """(rate, bound, p, detail) of T = trials certifications with the exact sampler at grid 1/255."""
    model, x, theta, label, p, gap_true = _problem(
        noise, anisotropic, 0.75, np.random.default_rng([seed, 11]), dim
    )
    smoothed = Smoothed(model, noise, batch_size=40_000, device="cpu", sampler=ExactSampler(LEVELS))
    res = smoothed.certify(
        x.expand(trials, -1),
        theta.expand(trials, -1),
        n0=50,
        n=n,
        alpha=alpha,
        seed=seed,
        idx=np.arange(trials),
    )
    certified = res.prediction != ABSTAIN
    false = certified & ((res.prediction != label) | (res.gap > gap_true))
    rate = float(false.mean())
    bound = float(binom.ppf(1.0 - 1e-6, trials, alpha) / trials)
    hits = float(res.counts[:, label].sum())
    z = (hits - trials * n * p) / np.sqrt(trials * n * p * (1 - p))
    detail = (
        f"{trials} trials, n={n}, grid 1/{LEVELS}, f(z) = [z_0 > c] halfway between grid values, p={p:.4f}, "
        f"true gap {gap_true:.3f}: {certified.mean():.0%} certified; sampled vs exact p: z = {z:+.2f}. "
        f"Bound: (1 - 1e-06) quantile of Binomial({trials}, {alpha:g}) / {trials}"
    )
    return rate, bound, z, detail
