"""Per-input noise optimisers: the isotropic data-dependent sigma (DDRS) and the anisotropic theta (ANCER).

Both maximise a differentiable surrogate of the certified radius (spec section 5); the isotropic
"votes" search instead maximises the radius certification would report from hard votes. psi is the mean
soft prediction over m noisy copies x + theta * u (softmax of the model's logits, or its outputs as
they are when it returns probabilities); p1, p2 are psi's top two entries and the surrogate gap is
``noise.surrogate_gap(p1, p2)``: Phi^-1(p1) - Phi^-1(p2) clamped (l2) or p1 - p2 (l1).

The model is frozen while optimising (requires_grad False on its parameters, restored afterwards;
no .grad is accumulated on them) and used in the mode it is in (call model.eval() first). Everything
runs on the inputs' device. Draws are reproducible per input: the u of step t for the input with
data-set index idx comes from ``sampling.unit_noise(phase=Phase.SIGMA or Phase.THETA, block=t, idx)``,
so an input's result does not depend on the other inputs of its batch or on batch_size (up to the
float rounding of the model). These draws only choose theta; certify with fresh draws
(``smooth.Smoothed.certify`` uses other phases).

This module checks the arguments and holds theta's Adam; the surrogate itself is ``_surrogate.Surrogate``
and the isotropic searches (gradient, search, votes) are in ``_sigma_search``.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import _checks
from ..errors import InputError, InvalidParameterError, UnknownNameError
from ._sigma_search import sigma_gradient, sigma_search
from ._surrogate import Surrogate
from .bounds import pA_lower_ceiling
from .noise import get_noise
from .sampling import Phase
from .settings import SIGMA_METHODS

__all__ = ["OUTPUTS", "SIGMA_METHODS", "OptimiseResult", "frozen", "optimise_sigma", "optimise_theta"]
__all__ += ["surrogate_gap"]

OUTPUTS = ("logits", "probabilities")


@dataclass(frozen=True)
class OptimiseResult:
    """What an optimiser chose for B inputs; tensors live on the inputs' device.

    sigma: (B,) float, the isotropic sigma_x (optimise_sigma's answer; optimise_theta's lower bound).
    theta: (B, *D) float, the anisotropic theta_x (optimise_theta only; None for optimise_sigma).
    iterations_run: (B,) int64, gradient or Adam steps taken (surrogate evaluations for the search).
    forward_passes: (B,) int64, noisy inputs sent through the model per input; backward_passes:
    (B,) int64, how many of them were back-propagated (0 for the search).
    seconds: wall-clock time of the whole call.
    """

    sigma: torch.Tensor
    theta: torch.Tensor | None
    iterations_run: torch.Tensor
    forward_passes: torch.Tensor
    backward_passes: torch.Tensor
    seconds: float


@contextmanager
def frozen(model):
    """Set requires_grad False on every model parameter; restore each parameter's flag on exit."""
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _ancer_objective(surrogate, kappa):
    """gap_hat * exp(mean log theta) + kappa * gap_hat * min theta: ANCER's surrogate (spec section 5)."""

    def objective(psi, theta):
        gap, flat = surrogate.gap(psi), theta.flatten(1)
        return gap * flat.log().mean(dim=1).exp() + kappa * gap * flat.amin(dim=1)

    return objective


def _prepare(model, noise, x, idx, outputs, batch_size):
    """Checked (noise, x, idx); runs the model once on the clean inputs to check what it returns."""
    noise = get_noise(noise)
    if outputs not in OUTPUTS:
        raise UnknownNameError(f"outputs={outputs!r} is unknown; choose one of {list(OUTPUTS)}")
    _checks.check_int("batch_size", batch_size, hint="; e.g. 1000")
    x = _checks.check_inputs(x)
    B = x.shape[0]
    idx = np.arange(B, dtype=np.int64) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
    if idx.shape != (B,):
        raise InputError(f"idx has {idx.size} entries for {B} inputs; give each input's data-set index")
    with torch.no_grad(), frozen(model):
        out = torch.cat([model(chunk) for chunk in x.split(batch_size)])
    if out.ndim != 2 or out.shape[0] != B or out.shape[1] < 2:
        raise InputError(
            f"model returned shape {tuple(out.shape)} for {B} inputs; it must return "
            "(batch, num_classes) scores with num_classes >= 2"
        )
    if not bool(torch.isfinite(out).all()):
        raise InputError("model returned NaN or Inf scores; check the model and data")
    if outputs == "probabilities" and not torch.allclose(out.sum(1), out.new_ones(B), atol=1e-3):
        raise InputError("model outputs do not sum to 1 over classes; pass outputs='logits'")
    return noise, x, idx


def _result(x, *, sigma, theta=None, steps, passes, start):
    B, ints = x.shape[0], dict(dtype=torch.int64, device=x.device)
    counts = [torch.as_tensor(v, **ints).expand(B).clone() for v in (steps, *passes)]
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return OptimiseResult(sigma, theta, *counts, seconds=time.perf_counter() - start)


def optimise_sigma(
    model,
    noise,
    x,
    sigma0: float,
    *,
    iterations: int = 900,
    lr: float = 0.04,
    samples: int | None = None,
    seed: int = 0,
    idx=None,
    outputs: str = "logits",
    method: str = "gradient",
    batch_size: int = 1000,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    grid_points: int = 8,
    refine_steps: int = 6,
    certify_n: int = 100_000,
    certify_alpha: float = 0.001,
) -> OptimiseResult:
    """Data-dependent isotropic sigma_x per input (DDRS): maximise c * sigma * gap_hat(sigma).

    c = 1/2 for l2 (gaussian) and 1 for l1 (uniform): the surrogate isotropic radius.

    Parameters
    ----------
    model : callable mapping (batch, *D) to (batch, C) logits or probabilities, C >= 2.
    noise : "gaussian", "uniform" or a NoiseFamily.
    x : tensor of shape (B, *D) on the model's device.
    sigma0 : the starting sigma (the training sigma), > 0.
    method : "gradient" (DDRS, public), "search" (the same surrogate on common draws: a grid of
        ``grid_points`` log-spaced sigmas, then ``refine_steps`` golden-section steps) or "votes" (that
        search on the hard-vote radius certification reports, capped by what (certify_n, certify_alpha)
        can certify). Why and at what cost: core/_sigma_search.py.
    iterations, lr : the gradient's sigma <- clamp(sigma + lr * grad, sigma_min, sigma_max), ``samples``
        fresh draws per step (public defaults 900, 0.04, 100). Not used by the searches.
    samples : draws per surrogate evaluation; default 100 for the gradient (public), 1000 for the searches.
    seed, idx : name the draws: input i uses unit_noise(phase=Phase.SIGMA, block=step, idx=idx[i]).
        idx defaults to 0..B-1; pass data-set indices so that results do not depend on batching.
    outputs : "logits" (softmax is applied) or "probabilities" (used as they are).
    batch_size : most noisy inputs per model call.
    sigma_min, sigma_max : the allowed range; sigma_min defaults to sigma0 / 10 (it keeps sigma positive,
        which the public code does not), sigma_max to 10 * sigma0 for the searches and to no bound for the
        gradient (public behaviour).

    Returns
    -------
    OptimiseResult with sigma (B,) in [sigma_min, sigma_max] and theta None.
    """
    start = time.perf_counter()
    noise, x, idx = _prepare(model, noise, x, idx, outputs, batch_size)
    sigma0 = _checks.check_real("sigma0", sigma0, hint="; start from the training sigma, e.g. 0.25")
    samples, cap, sigma_min, sigma_max = _search_settings(
        method, samples, sigma0, sigma_min, sigma_max, certify_n, certify_alpha
    )
    surrogate = Surrogate(
        model, noise, x, samples=samples, seed=seed, phase=Phase.SIGMA, outputs=outputs, batch_size=batch_size
    )
    with frozen(model):
        if method == "gradient":
            iterations = _checks.check_int("iterations", iterations, min_value=0, hint="; the usual is 900")
            lr = _checks.check_real("lr", lr, hint="; the usual value is 0.04")
            sigma = sigma_gradient(surrogate, x, idx, sigma0, iterations, lr, sigma_min, sigma_max)
            steps, passes = iterations, surrogate.passes(iterations)
        else:
            grid_points = _checks.check_int("grid_points", grid_points, min_value=2, hint="; e.g. 8")
            refine_steps = _checks.check_int("refine_steps", refine_steps, min_value=0, hint="; e.g. 6")
            sigma = sigma_search(
                surrogate, x, idx, sigma0, sigma_min, sigma_max, grid_points, refine_steps, cap
            )
            steps = grid_points + 3 + refine_steps
            passes = (steps * samples, 0)
    return _result(x, sigma=sigma, steps=steps, passes=passes, start=start)


def optimise_theta(
    model,
    noise,
    x,
    sigma,
    *,
    iterations: int = 100,
    lr: float = 0.04,
    samples: int = 100,
    kappa: float = 2.0,
    seed: int = 0,
    idx=None,
    outputs: str = "logits",
    batch_size: int = 1000,
    tol: float | None = None,
    patience: int = 10,
) -> OptimiseResult:
    """Per-dimension theta_x per input (ANCER), maximising the surrogate proxy volume with Adam.

    J(theta) = gap_hat(theta) * exp(mean(log theta)) + kappa * gap_hat(theta) * min(theta), from
    theta = sigma_x, with theta <- max(theta, sigma_x) after every Adam step. One Adam runs over the
    (B, *D) parameter: Adam is elementwise and the objectives are summed over inputs, so inputs do not
    interact. The projection alone does not guarantee that the final region contains the isotropic
    one (the gap can shrink): compare the certified radii and fall back to sigma_x (spec section 5).

    Parameters
    ----------
    model, noise, x, seed, idx, outputs, batch_size : as for optimise_sigma; step t of input i uses
        unit_noise(phase=Phase.THETA, block=t, idx=idx[i]).
    sigma : scalar or tensor of shape (B,), > 0: sigma_x, the start and lower bound of theta.
    iterations, lr, samples, kappa : public defaults 100, 0.04, 100, 2 (10,000 forward and backward
        passes per input).
    tol, patience : early stop, off by default (public behaviour). With tol, an input stops when the
        mean objective of its last ``patience`` steps exceeds that of the ``patience`` steps before
        by less than tol * |previous mean|; its theta is then kept and it leaves the forward passes.

    Returns
    -------
    OptimiseResult with theta (B, *D) >= sigma elementwise and sigma (B,) the given sigma_x.
    """
    start = time.perf_counter()
    noise, x, idx = _prepare(model, noise, x, idx, outputs, batch_size)
    B, ones = x.shape[0], (1,) * (x.ndim - 1)
    sigma = _checks.check_theta(sigma, "sigma").to(device=x.device, dtype=x.dtype).reshape(-1)
    sigma = sigma.expand(B) if sigma.numel() == 1 else sigma
    if sigma.shape != (B,):
        raise InputError(f"sigma has {sigma.numel()} entries for {B} inputs; give one sigma_x per input")
    iterations, lr, samples, kappa, tol, patience = _adam_settings(
        iterations, lr, samples, kappa, tol, patience
    )
    surrogate = Surrogate(
        model, noise, x, samples=samples, seed=seed, phase=Phase.THETA, outputs=outputs, batch_size=batch_size
    )
    with frozen(model):
        theta, steps = _theta_adam(
            surrogate, x, idx, sigma.reshape(B, *ones), iterations, lr, kappa, tol, patience
        )
    return _result(
        x, sigma=sigma.clone(), theta=theta, steps=steps, passes=surrogate.passes(steps), start=start
    )


def _theta_adam(surrogate, x, idx, floor, iterations, lr, kappa, tol, patience):
    """Projected Adam ascent on J; returns theta (B, *D) and the steps each input took (B,)."""
    B, objective = x.shape[0], _ancer_objective(surrogate, kappa)
    theta = floor.expand_as(x).clone().requires_grad_(True)
    kept = theta.detach().clone()  # each input's theta after its last step
    optimiser = torch.optim.Adam([theta], lr=lr)
    steps = torch.zeros(B, dtype=torch.int64, device=x.device)
    history = torch.full((iterations, B), math.nan, device=x.device, dtype=x.dtype)
    running, active = torch.ones(B, dtype=torch.bool, device=x.device), torch.arange(B, device=x.device)
    with torch.enable_grad():
        for step in range(iterations):
            if tol is not None:
                active = running.nonzero()[:, 0]
                if active.numel() == 0:
                    break
            rows = active.cpu().numpy()
            value, grad = surrogate.value_and_grad(
                objective, x[active], theta.detach()[active], idx[rows], step
            )
            theta.grad = torch.zeros_like(theta).index_copy_(0, active, -grad)  # Adam minimises -J
            optimiser.step()
            with torch.no_grad():
                theta.copy_(torch.maximum(theta, floor))  # project: theta >= sigma_x
                kept.index_copy_(0, active, theta[active])
            steps[active] += 1
            history[step, active] = value
            if tol is not None and (step + 1) % patience == 0 and step + 1 >= 2 * patience:
                recent = history[step + 1 - patience : step + 1].mean(0)
                before = history[step + 1 - 2 * patience : step + 1 - patience].mean(0)
                running &= ~(recent - before < tol * before.abs())  # NaN (stopped) compares False
    return kept, steps


@torch.no_grad()
def surrogate_gap(
    model,
    noise,
    x,
    theta,
    *,
    samples: int = 1000,
    seed: int = 0,
    idx=None,
    outputs: str = "logits",
    batch_size: int = 1000,
    phase: int = Phase.SIGMA,
    block: int = 0,
) -> torch.Tensor:
    """gap_hat at theta from one block of ``samples`` draws per input: (B,) on x's device.

    theta: scalar, (B,) or (B, *D). The draws are unit_noise(phase, block, idx) under ``seed``: pass
    a seed the optimiser did not use to evaluate its answer on independent draws. Multiply by
    sigma / 2 (l2) or sigma (l1) for the isotropic surrogate radius, by exp(mean(log theta)) for
    the surrogate proxy radius.
    """
    noise, x, idx = _prepare(model, noise, x, idx, outputs, batch_size)
    samples = _checks.check_int("samples", samples, hint="; e.g. 1000")
    theta = _checks.check_theta(theta, "theta").to(device=x.device, dtype=x.dtype)
    if theta.shape != x.shape:  # a scalar or one sigma per input
        theta = theta.reshape(-1).expand(x.shape[0]) if theta.numel() == 1 else theta.reshape(-1)
        theta = theta.reshape(x.shape[0], *(1,) * (x.ndim - 1))
    surrogate = Surrogate(
        model, noise, x, samples=samples, seed=seed, phase=phase, outputs=outputs, batch_size=batch_size
    )
    u = surrogate.draws(idx, block)
    return surrogate.gap(surrogate.mean_probs(x, theta.unsqueeze(1), u)[:, 0])


def _search_settings(method, samples, sigma0, sigma_min, sigma_max, certify_n, certify_alpha) -> tuple:
    """optimise_sigma's (samples, votes cap on pA or None, sigma_min, sigma_max), checked."""
    if method not in SIGMA_METHODS:
        raise UnknownNameError(f"method={method!r} is unknown; choose one of {list(SIGMA_METHODS)}")
    samples = (100 if method == "gradient" else 1000) if samples is None else samples
    cap = None
    if method == "votes":
        certify_n, certify_alpha = _checks.check_budget(1, certify_n, certify_alpha)[1:]
        cap = pA_lower_ceiling(certify_n, certify_alpha)
    samples = _checks.check_int("samples", samples, hint="; the usual value is 100 (1000 for the search)")
    sigma_min = sigma0 / 10 if sigma_min is None else _checks.check_real("sigma_min", sigma_min)
    if sigma_max is None:
        sigma_max = math.inf if method == "gradient" else 10 * sigma0
    elif isinstance(sigma_max, bool) or not isinstance(sigma_max, (int, float)) or sigma_max <= sigma_min:
        raise InvalidParameterError(f"sigma_max={sigma_max!r} must be a number > sigma_min={sigma_min}")
    if method != "gradient" and not math.isfinite(sigma_max):
        raise InvalidParameterError(f"sigma_max={sigma_max} must be finite for the search; e.g. 10 * sigma0")
    return samples, cap, sigma_min, sigma_max


def _adam_settings(iterations, lr, samples, kappa, tol, patience) -> tuple:
    """optimise_theta's settings, checked (one line naming the usual value otherwise)."""
    iterations = _checks.check_int("iterations", iterations, min_value=0, hint="; the usual value is 100")
    lr = _checks.check_real("lr", lr, hint="; the usual value is 0.04")
    samples = _checks.check_int("samples", samples, hint="; the usual value is 100")
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not 0 <= kappa < math.inf:
        raise InvalidParameterError(f"kappa={kappa!r} must be a finite number >= 0; the usual value is 2")
    tol = None if tol is None else _checks.check_real("tol", tol, hint="; e.g. 1e-3")
    patience = _checks.check_int("patience", patience, hint="; e.g. 10")
    return iterations, lr, samples, float(kappa), tol, patience
