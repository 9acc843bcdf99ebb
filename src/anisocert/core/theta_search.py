"""The certified ANCER objective: the largest volume whose forecast radius keeps the isotropic one.

ANCER's public objective (spec section 5) climbs a soft surrogate with a kappa * gap * min(theta) term;
nothing in it makes the certified radius min(theta) * gap(theta) reach the isotropic radius
sigma_x * gap(sigma_x), so with a fallback most of its certificates lose that race and the isotropic
ball is reported instead (issue 15). This module repairs a direction theta_dir >= sigma_x (ANCER's Adam
answer) into the one that maximises the proxy radius along the path

    theta(t) = sigma_x * (theta_dir / sigma_x) ** t,   t in [0, 1]

(t = 0: the isotropic sigma_x; t = 1: ANCER's theta; the proxy radius grows with t at a fixed gap), and
along the path that grows only the k coordinates Adam grew most, to their full value (k = 0..D: it keeps
coordinates whose votes move at sigma_x while the others stretch, as on a linear classifier with dead
inputs, where the first path must shrink everything), whichever reaches the larger proxy radius,
subject to the hard-vote forecast

    min(theta(t)) * gap(pA_lower(share(t) * n, n, alpha)) >= sigma_x * gap(pA_lower(share(0) * n, n, alpha)),

where share(t) is the fraction of m check draws u_j (their own stream, ``Phase.THETA_CHECK``) on which
f(x + theta(t) * u_j) votes for the class that wins at sigma_x, and the same u_j serve every t and
sigma_x (common random numbers: the comparison sees only the draws whose vote theta changes). With
``margin`` z > 0 the share at t is lowered by z * sqrt(flips) / m (flips: the check draws whose vote
differs between theta(t) and sigma_x), a one-sided allowance for the check's own noise. The largest
feasible t (k) is found by bisection (the full step is tried first; ``steps`` halvings of t after it,
ceil(log2 D) of k).

Soundness: theta is a function of x and of optimisation draws only (Phase.THETA for the direction,
Phase.THETA_CHECK for the check); certification draws come from the SELECT and ESTIMATE streams, which
the choice never sees (docs/soundness.md section 4).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .bounds import pA_lower
from .sampling import Phase, unit_noise

__all__ = ["forecast_radius", "repair_theta"]


def forecast_radius(noise, votes, m: int, n: int, alpha: float, min_theta) -> np.ndarray:
    """min_theta * gap(pA_lower(votes / m * n, n, alpha)): the radius a certificate of n draws would
    report if pA were the check share votes / m; 0 where that bound is below 1/2 (abstain)."""
    share = np.clip(np.asarray(votes, dtype=np.float64) / m, 0.0, 1.0)
    lower = pA_lower(share * n, n, alpha)
    gap = np.where(lower >= 0.5, noise.gap(np.maximum(lower, 0.5)), 0.0)
    return np.asarray(min_theta, dtype=np.float64) * gap


class _Votes:
    """Hard votes of the model at x + scale * u on one input's check draws; chunked by batch_size."""

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size = model, batch_size

    @torch.no_grad()
    def labels(self, x: torch.Tensor, scale: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x (*D), scale broadcastable to (*D), u (m, *D) -> (m,) argmax classes."""
        noisy = torch.addcmul(x, scale, u)
        return torch.cat([self.model(chunk).argmax(dim=1) for chunk in noisy.split(self.batch_size)])


@torch.no_grad()
def repair_theta(
    model,
    noise,
    x: torch.Tensor,
    sigma: torch.Tensor,
    theta_dir: torch.Tensor,
    *,
    idx,
    n: int,
    alpha: float,
    samples: int = 500,
    steps: int = 6,
    margin: float = 0.0,
    seed: int = 0,
    batch_size: int = 1000,
) -> tuple[torch.Tensor, np.ndarray]:
    """(theta (B, *D), t (B,)): the repaired theta of each input (module docstring) and where it lies: t in
    [0, 1] on the scaled path, or -k / D on the top-k path.

    x (B, *D) and theta_dir (B, *D) on one device, sigma (B,) > 0, theta_dir >= sigma elementwise;
    idx: the inputs' data-set indices (they name the check streams). n, alpha: the certification the
    forecast imitates. Cost per input: at most (steps + ceil(log2 D) + 2) * samples forward passes, no
    backward pass.
    """
    B, ones = x.shape[0], (1,) * (x.ndim - 1)
    votes, generator = _Votes(model, batch_size), torch.Generator(device=x.device)
    sigma = sigma.to(device=x.device, dtype=x.dtype).reshape(B)
    log_ratio = (theta_dir / sigma.reshape(B, *ones)).log().clamp_min(0.0)  # >= 0: theta >= sigma_x
    out, t_out = theta_dir.new_empty(theta_dir.shape), np.zeros(B)
    for b in range(B):
        u = unit_noise(
            noise,
            (samples, *x.shape[1:]),
            seed=seed,
            idx=int(idx[b]),
            phase=Phase.THETA_CHECK,
            block=0,
            generator=generator,
            device=x.device,
            dtype=x.dtype,
        )
        out[b], t_out[b] = _repair_one(
            votes, noise, x[b], sigma[b], log_ratio[b], u, (n, alpha, margin, steps)
        )
    return out, t_out


def _repair_one(votes: _Votes, noise, x, sigma, log_ratio, u, settings) -> tuple[torch.Tensor, float]:
    """One input: (theta, t) as repair_theta returns them; u (m, *D) its check draws."""
    n, alpha, margin, steps = settings
    m = u.shape[0]
    base = votes.labels(x, sigma, u)
    cls = torch.bincount(base).argmax()
    hit0 = base == cls
    target = forecast_radius(noise, int(hit0.sum()), m, n, alpha, float(sigma))

    def feasible(theta: torch.Tensor) -> bool:
        hit = votes.labels(x, theta, u) == cls
        flips = int((hit != hit0).sum())
        radius = forecast_radius(noise, int(hit.sum()) - margin * flips**0.5, m, n, alpha, float(theta.min()))
        return bool(radius >= target)

    def scaled(t: float) -> torch.Tensor:  # the first path: every log-ratio times t
        return sigma * (t * log_ratio).exp()

    order = log_ratio.flatten().argsort(descending=True, stable=True)

    def top(k: int) -> torch.Tensor:  # the second path: the k most-grown coordinates at full value
        keep = torch.zeros_like(log_ratio).flatten()
        keep[order[:k]] = 1.0
        return sigma * (keep.view_as(log_ratio) * log_ratio).exp()

    if feasible(scaled(1.0)):
        return scaled(1.0), 1.0
    t = _largest_feasible(lambda t: feasible(scaled(t)), 0.0, 1.0, steps)
    D = order.numel()
    k = int(_largest_feasible(lambda k: feasible(top(int(k))), 0, D, max(1, math.ceil(math.log2(D))), True))
    if k > 0 and float(top(k).log().mean()) > float(scaled(t).log().mean()):
        return top(k), -k / D  # negative: the second path, k / D of the coordinates
    return scaled(t), t


def _largest_feasible(feasible, lo, hi, steps: int, integer: bool = False):
    """Bisection for the largest feasible point in [lo, hi], lo feasible (sigma_x itself, whose forecast
    is the target) and hi not; integer: over the integers (stops once hi = lo + 1)."""
    for _ in range(steps):
        mid = (lo + hi) // 2 if integer else (lo + hi) / 2
        if integer and mid == lo:
            break
        lo, hi = (mid, hi) if feasible(mid) else (lo, mid)
    return lo
