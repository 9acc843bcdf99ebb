"""Training objectives for smoothed classifiers: one loss function per method, and the OBJECTIVES table.

Every loss takes clean inputs x of shape (B, *D) in [0, 1] space (noise is added there; the model
normalises inside), labels y of shape (B,), and a Step (noise scale theta, generator, epoch, config),
and returns the mean loss over the B inputs. Half-precision logits are cast to float32 before softmax, so the losses
are safe under float16 autocast.

- gaussian: cross-entropy on x + N(0, theta^2) (Cohen et al. 2019).
- uniform: cross-entropy on x + U[-theta, theta] (Yang et al. 2020; theta = half-width).
- smoothadv: PGD-l2 on the soft smoothed classifier with m draws, then cross-entropy on the m noisy
  adversarial copies (Salman et al. 2019, multi-noise variant).
- macer: soft smoothed cross-entropy + lambda * sigma/2 * (gamma - xi) on the correctly classified inputs
  whose gap xi = Phi^-1(p1) - Phi^-1(p2) is finite and <= gamma, no clamp (Zhai et al. 2020, as in
  RuntianZ/macer; see docs/training.md for the spec's clamp [0.02, 0.98], which is DDRS's variant).
- anisotropic: cross-entropy on x + N(0, theta^2) with theta = sigma * s, s a random per-pixel field in
  [1, K] on part of each batch (train/anisotropic.py; issue 23, for ANCER's anisotropic certificates).
- stability: cross-entropy on a noisy copy x1 + weight * KL(p(.|x1) || p(.|x2)) for a second copy x2
  (stability training as used by Yang et al. 2020 for l1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 (the usual name)

from ..core.noise import get_noise
from .anisotropic import anisotropic_loss

TrainConfig = Any  # a train.TrainConfig (not imported: _config imports this module)

__all__ = [
    "Objective",
    "OBJECTIVES",
    "Step",
    "augmentation_loss",
    "smoothed_log_probs",
    "smoothadv_eps",
    "smoothadv_attack",
    "smoothadv_loss",
    "macer_loss",
    "macer_terms",
    "MACER_LOG_EPS",
    "stability_loss",
]

MACER_LOG_EPS = 1e-10  # MACER's classification term is -log(p_y + 1e-10), as in RuntianZ/macer macer.py


class Step(NamedTuple):
    """What a loss needs besides (model, x, y): theta (std or half-width), the noise generator, the
    0-based epoch (for warm-ups) and the config (for hyper-parameters)."""

    theta: float
    generator: torch.Generator
    epoch: int
    config: TrainConfig


@dataclass(frozen=True)
class Objective:
    """A training method: its noise family, loss, hyper-parameter fields and cost.

    passes(config) is the number of forward+backward passes of the model per training input (used for
    time estimates).
    """

    name: str
    noise: str
    loss: Callable[[nn.Module, Tensor, Tensor, Step], Tensor]
    params: tuple[str, ...]
    passes: Callable[[TrainConfig], float]
    reference: str


def _repeat(x: Tensor, m: int) -> Tensor:
    """(B, *D) -> (B * m, *D), each input repeated m times consecutively."""
    return x.repeat_interleave(m, dim=0) if m > 1 else x


def _full(t: Tensor) -> Tensor:
    """float32 for half-precision tensors (autocast), otherwise unchanged (float64 stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def smoothed_log_probs(logits: Tensor, beta: float = 1.0) -> Tensor:
    """log of the soft smoothed classifier: log(mean_j softmax(beta * logits_j)) for logits (B, m, C).

    Returns (B, C); probabilities below 1e-20 are clamped so the log stays finite.
    """
    probs = F.softmax(beta * _full(logits), dim=-1).mean(dim=1)
    return probs.clamp_min(1e-20).log()


# -- gaussian / uniform augmentation --------------------------------------------------------------


def augmentation_loss(noise_name: str) -> Callable[[nn.Module, Tensor, Tensor, Step], Tensor]:
    """Cross-entropy of f(x + e) with one fresh draw e per input from the named family."""
    noise = get_noise(noise_name)

    def loss(model: nn.Module, x: Tensor, y: Tensor, step: Step) -> Tensor:
        return F.cross_entropy(_full(model(noise.sample(x, step.theta, step.generator))), y)

    loss.__name__ = f"{noise_name}_augmentation_loss"
    return loss


# -- SmoothAdv -------------------------------------------------------------------------------------


def smoothadv_eps(config: TrainConfig, epoch: int) -> float:
    """The attack radius at a 0-based epoch: grows linearly to smoothadv_eps over smoothadv_warmup epochs."""
    return config.smoothadv_eps * min(1.0, (epoch + 1) / config.smoothadv_warmup)


def smoothadv_attack(
    model: nn.Module, x: Tensor, y: Tensor, noise: Tensor, *, eps: float, steps: int
) -> Tensor:
    """PGD-l2 on the soft smoothed classifier (Salman et al.): the adversarial inputs x + delta.

    x: (B, *D) clean inputs in [0, 1]; noise: (B, m, *D) draws kept fixed during the attack. Each step
    ascends the cross-entropy of log(mean_j softmax(f(x + delta + noise_j))) along the normalised
    gradient with step 2 * eps / steps (a zero gradient is replaced by a random direction), then
    projects x + delta onto [0, 1] and delta onto the l2 ball of radius eps. delta starts at 0.
    The model's parameters receive no gradient; call it with the model in eval mode, as the paper does.
    """
    B, m = noise.shape[:2]
    step_size = 2.0 * eps / steps
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        noisy = (x + delta).unsqueeze(1) + noise
        logits = model(noisy.flatten(0, 1)).view(B, m, -1)
        loss = F.nll_loss(smoothed_log_probs(logits), y)
        (grad,) = torch.autograd.grad(loss, [delta])
        with torch.no_grad():
            grad = grad.float()
            norms = grad.flatten(1).norm(dim=1)
            zero = norms == 0
            if bool(zero.any()):
                grad[zero] = torch.randn_like(grad[zero])
                norms = grad.flatten(1).norm(dim=1)
            delta = delta + step_size * grad / norms.view(B, *([1] * (x.ndim - 1)))
            delta = (x + delta).clamp(0.0, 1.0) - x
            delta = delta.flatten(1).renorm(p=2, dim=0, maxnorm=eps).view_as(x)
    return (x + delta).detach()


def smoothadv_loss(model: nn.Module, x: Tensor, y: Tensor, step: Step) -> Tensor:
    """SmoothAdv: attack the soft smoothed classifier with m draws (model in eval mode, as in the public
    code), then the mean cross-entropy of f on the m noisy adversarial copies (same draws)."""
    c = step.config
    m = c.smoothadv_samples
    noise = get_noise("gaussian")
    draws = step.theta * noise.unit((x.shape[0], m, *x.shape[1:]), step.generator, x.device, x.dtype)
    eps = smoothadv_eps(c, step.epoch)
    was_training = model.training
    model.eval()
    x_adv = smoothadv_attack(model, x, y, draws, eps=eps, steps=c.smoothadv_steps)
    model.train(was_training)
    noisy = (x_adv.unsqueeze(1) + draws).flatten(0, 1)
    return F.cross_entropy(_full(model(noisy)), _repeat(y, m))


# -- MACER -----------------------------------------------------------------------------------------


def macer_terms(
    logits: Tensor, y: Tensor, *, sigma: float, gamma: float, beta: float
) -> tuple[Tensor, Tensor]:
    """MACER's two per-input terms for logits (B, m, C) of m noisy copies: (ce, robust), each (B,).

    As RuntianZ/macer ``macer_train``: ce = -log(mean_j softmax(logits_j)[y] + 1e-10). With the inverse
    temperature beta, p = mean_j softmax(beta * logits_j) and p1 >= p2 its top two entries (no clamp),
    xi = Phi^-1(p1) - Phi^-1(p2); robust = sigma/2 * (gamma - xi) where the top class is y and xi is finite
    and <= gamma (gamma is compared with xi, before the sigma/2 factor), else 0. An infinite xi (p1 = 1 or
    p2 = 0 in floating point) drops the input from the hinge, as there.
    """
    logits = _full(logits)
    ce = -torch.log(F.softmax(logits, dim=-1).mean(dim=1) + MACER_LOG_EPS).gather(1, y[:, None])[:, 0]
    top = F.softmax(beta * logits, dim=-1).mean(dim=1).topk(2, dim=1)
    p1, p2 = top.values[:, 0], top.values[:, 1]
    normal = torch.distributions.Normal(torch.zeros((), dtype=p1.dtype, device=p1.device), 1.0)
    with torch.no_grad():
        xi = normal.icdf(p1) - normal.icdf(p2)
        active = (top.indices[:, 0] == y) & torch.isfinite(xi) & (xi.abs() <= gamma)
    # recompute on the selected inputs only: the gradient of Phi^-1 at 0 or 1 is infinite, and 0 * inf
    # through a masked branch would be NaN
    robust = torch.zeros_like(p1)
    if bool(active.any()):
        gap = normal.icdf(p1[active]) - normal.icdf(p2[active])
        robust = robust.index_put((active.nonzero()[:, 0],), sigma / 2 * (gamma - gap))
    return ce, robust


def macer_loss(model: nn.Module, x: Tensor, y: Tensor, step: Step) -> Tensor:
    """MACER: mean over the B inputs of ce + lambda * robust (macer_terms), gauss_num draws each.

    lambda is 0 during the first macer_deferred epochs (cross-entropy of the soft smoothed classifier only).
    """
    c = step.config
    m = c.macer_gauss_num
    noisy = get_noise("gaussian").sample(_repeat(x, m), step.theta, step.generator)
    logits = model(noisy).view(x.shape[0], m, -1)
    ce, robust = macer_terms(logits, y, sigma=step.theta, gamma=c.macer_gamma, beta=c.macer_beta)
    lbd = c.macer_lambda if step.epoch >= c.macer_deferred else 0.0
    return (ce + lbd * robust).mean()


# -- stability training ----------------------------------------------------------------------------


def stability_loss(model: nn.Module, x: Tensor, y: Tensor, step: Step) -> Tensor:
    """CE(f(x1), y) + weight * KL(p(.|x1) || p(.|x2)) with x1, x2 two uniform-noise copies of x
    (one forward pass on both; the KL is averaged over the batch)."""
    B = x.shape[0]
    noise = get_noise("uniform")
    noisy = noise.sample(torch.cat([x, x]), step.theta, step.generator)
    logits = _full(model(noisy))
    log_p1, log_p2 = F.log_softmax(logits[:B], dim=1), F.log_softmax(logits[B:], dim=1)
    kl = F.kl_div(log_p2, log_p1, reduction="batchmean", log_target=True)  # sum p1 (log p1 - log p2)
    return F.nll_loss(log_p1, y) + step.config.stability_weight * kl


# -- the table -------------------------------------------------------------------------------------

OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "gaussian",
            "gaussian",
            augmentation_loss("gaussian"),
            (),
            lambda c: 1.0,
            "Cohen et al. 2019, Gaussian data augmentation",
        ),
        Objective(
            "uniform",
            "uniform",
            augmentation_loss("uniform"),
            (),
            lambda c: 1.0,
            "Yang et al. 2020, uniform-noise augmentation",
        ),
        Objective(
            "smoothadv",
            "gaussian",
            smoothadv_loss,
            ("smoothadv_eps", "smoothadv_steps", "smoothadv_samples", "smoothadv_warmup"),
            lambda c: c.smoothadv_samples * (c.smoothadv_steps + 1.0),
            "Salman et al. 2019, SmoothAdv (PGD-l2, multi-noise)",
        ),
        Objective(
            "macer",
            "gaussian",
            macer_loss,
            ("macer_gauss_num", "macer_lambda", "macer_gamma", "macer_beta", "macer_deferred"),
            lambda c: float(c.macer_gauss_num),
            "Zhai et al. 2020, MACER",
        ),
        Objective(
            "stability",
            "uniform",
            stability_loss,
            ("stability_weight",),
            lambda c: 2.0,
            "Yang et al. 2020, stability training with uniform noise",
        ),
        Objective(
            "anisotropic",
            "gaussian",
            anisotropic_loss,
            ("aniso_field", "aniso_max_scale", "aniso_iso_fraction", "aniso_grid", "aniso_margin"),
            lambda c: 1.0,
            "anisocert issue 23: Gaussian noise with random per-pixel scales in [1, K] (for ANCER)",
        ),
    )
}
