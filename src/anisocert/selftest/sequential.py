"""Selftest rows for sequential certification: optional stopping must not inflate false certifications.

Each case is a linear base classifier f(z) = 1 iff w.z + b > 0 placed so that the exact radius of its
smoothed classifier (min(theta) times the scaled distance to the decision boundary) lies 1 % below or
above a grid radius: there the stopping rule draws longest and looks most often, so a sequence that
spent alpha at every look would certify falsely most often. Two checks per case:

- ``simulated``: T independent certifications whose draws are Bernoulli(pA) with the closed-form pA,
  through the certifier's own sequential path (sequential.run_looks, the same stopping rule and bound);
- ``certify``: T copies of the input through Smoothed.certify(radii=...) with the torch model (each copy
  its own noise stream), fewer trials since every draw is a forward pass.

A false certification is a certificate of the wrong class or with a radius above the exact radius; its
rate must stay below the (1 - 1e-6) quantile of Binomial(T, alpha) / T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binom, norm

from ..core.bounds import pA_lower
from ..core.noise import get_noise
from ..core.sequential import LookSchedule, binomial_draws, parse_radii, run_looks
from ..core.smooth import ABSTAIN, Smoothed
from ._linear import Linear2

__all__ = ["SEQUENTIAL_CASES", "SeqProblem", "seq_problem", "simulated_false_rate", "certify_false_rate"]

FALSE_ALARM = 1e-6
GRID = {"gaussian": (0.25, 0.5, 0.75), "uniform": (0.1, 0.2, 0.3)}
# (noise, anisotropic theta, grid radius the exact radius sits next to, 0.99: just below, 1.01: just above)
SEQUENTIAL_CASES = tuple(
    (noise, aniso, radius, side)
    for noise, radius in (("gaussian", 0.25), ("uniform", 0.1))
    for aniso in (False, True)
    for side in (0.99, 1.01)
)


@dataclass(frozen=True)
class SeqProblem:
    model: torch.nn.Module
    x: torch.Tensor  # (dim,) float32
    theta: torch.Tensor  # (dim,) float32
    pA: float  # exact smoothed probability of class 1 at x
    exact_radius: float  # min(theta) * scaled distance to the boundary


def seq_problem(noise: str, anisotropic: bool, radius: float, rng, dim: int = 6) -> SeqProblem:
    """A linear classifier whose smoothed classifier has class 1 at x with exact radius ~ ``radius``.

    pA and the exact radius are computed in float64 from the float32 values the model and sampler use."""
    theta = (rng.uniform(0.25, 1.0, dim) if anisotropic else np.full(dim, 0.5)).astype(np.float32)
    x = rng.normal(0.0, 0.5, dim).astype(np.float32)
    t64 = theta.astype(np.float64)
    if noise == "gaussian":
        w = rng.normal(size=dim).astype(np.float32)
    else:  # uniform: w along one axis, so that pA is a closed form
        w = np.zeros(dim, dtype=np.float32)
        w[int(rng.integers(dim))] = 1.0
    w64 = w.astype(np.float64)
    along = np.linalg.norm(t64 * w64) if noise == "gaussian" else float(t64[w64 != 0][0])
    b = np.float32(radius / t64.min() * along - float(w64 @ x.astype(np.float64)))
    margin = float(w64 @ x.astype(np.float64)) + float(b)
    gap_true = margin / along
    pA = float(norm.cdf(gap_true)) if noise == "gaussian" else min(1.0, 0.5 + gap_true / 2)
    model = Linear2(w, float(b))
    return SeqProblem(model, torch.from_numpy(x), torch.from_numpy(theta), pA, float(t64.min() * gap_true))


def _bound(T: int, alpha: float) -> float:
    return float(binom.ppf(1.0 - FALSE_ALARM, T, alpha) / T)


def simulated_false_rate(
    noise: str, problem: SeqProblem, T: int, n: int, alpha: float, seed: int, schedule=None
) -> tuple[float, float, float]:
    """(false-certification rate, its bound, mean draws) of T simulated sequential certifications."""
    family, grid = get_noise(noise), parse_radii(GRID[noise])
    schedule = LookSchedule.geometric(n, alpha) if schedule is None else schedule
    scale = float(problem.theta.double().min())
    draw = binomial_draws(np.full(T, problem.pA), np.random.default_rng(seed))
    res = run_looks(draw, np.zeros(T, dtype=np.int64), 2, family, schedule, scale, grid)
    lower = pA_lower(res.counts[:, 0], res.n, res.alpha)
    certified = lower >= 0.5
    radius = scale * family.gap(np.where(certified, lower, 0.5))
    false = certified & (radius > problem.exact_radius)
    return float(false.mean()), _bound(T, alpha), float(res.n.mean())


def certify_false_rate(
    noise: str, problem: SeqProblem, T: int, n: int, alpha: float, seed: int
) -> tuple[float, float, float]:
    """The same through Smoothed.certify(radii=...): T copies of x, copy i with its own stream i."""
    smoothed = Smoothed(problem.model, noise, batch_size=20_000, device="cpu")
    x, theta = problem.x.expand(T, -1), problem.theta.expand(T, -1)
    res = smoothed.certify(x, theta, n0=50, n=n, alpha=alpha, seed=seed, idx=np.arange(T), radii=GRID[noise])
    false = (res.prediction != ABSTAIN) & ((res.prediction != 1) | (res.radius > problem.exact_radius))
    return float(false.mean()), _bound(T, alpha), float(res.drawn.mean())
