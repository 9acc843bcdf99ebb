"""The ANCER procedure for a batch of inputs, in the order of the method (spec sections 5-6):

1. sigma_x: the data-dependent isotropic sigma of each input (DDRS; ``optimise_sigma_x``);
2. theta_x: the anisotropic theta, grown from sigma_x and never below it (``optimise_theta_x``): ANCER's
   public objective (``paper``), or its Adam answer repaired to the largest step from sigma_x whose
   hard-vote forecast radius keeps the isotropic one (``certified``: core/theta_search.py);
3. certify theta_x with fresh draws, and
4. compare with the isotropic certificate so that the reported region contains it (``certify_with_fallback``).

``ancer`` runs the four steps on tensors, without a run directory; the runner (run/runner.py) calls the
steps one by one so that it can store the optimisation before certifying. Fallback modes:

- ``both``: certify sigma_x and theta_x, alpha/2 each (union bound: the reported one holds at alpha), and
  report theta_x's certificate only where its radius reaches the isotropic one (it then contains it);
- ``select``: the n0 selection draws, taken at sigma_x and at theta_x, forecast both radii; only the larger
  forecast is certified, at alpha (the choice never sees the bound's draws);
- ``off``: certify theta_x alone, at alpha (the public code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .certificates import Certificates
from .sampling import per_input
from .settings import FALLBACKS, Budget, SigmaSearch, ThetaSearch
from .smooth import ABSTAIN, Smoothed, certificate_from_counts, predicted_radius, theta_summary

__all__ = [
    "FALLBACKS",
    "AncerResult",
    "Budget",
    "SigmaSearch",
    "ThetaSearch",
    "ancer",
    "certify_with_fallback",
    "optimise_sigma_x",
    "optimise_theta_x",
]


@dataclass(frozen=True)
class AncerResult:
    """``ancer``'s answer for B inputs: sigma_x (B,), theta_x (B, *D), the reported certificates (with
    their regions' noise: theta_x, or sigma_x where the isotropic certificate was reported) and where that
    happened (fallback, bool (B,))."""

    sigma: np.ndarray
    theta: np.ndarray
    certificate: Certificates
    fallback: np.ndarray


def ancer(
    model,
    noise,
    x: torch.Tensor,
    *,
    sigma0: float,
    idx=None,
    budget: Budget = Budget(),
    sigma_search: SigmaSearch = SigmaSearch(),
    theta_search: ThetaSearch = ThetaSearch(),
    fallback: str = "both",
    outputs: str = "logits",
    batch_size: int = 1000,
    sampler=None,
) -> AncerResult:
    """Certify x (B, *D) with ANCER: with probability >= 1 - budget.alpha per input, a non-abstaining
    certificate holds on its region (an ellipsoid for gaussian, a cross-polytope for uniform noise).

    Sound only inside memory-based certification when several inputs' regions are compared (theta
    depends on the input): see core/memory.py. idx names each input's noise streams (default 0..B-1).
    """
    idx = list(range(x.shape[0])) if idx is None else [int(i) for i in idx]
    smoothed = Smoothed(model, noise, batch_size=batch_size, device=x.device, sampler=sampler)
    # 1. sigma_x: the isotropic data-dependent sigma (optimisation draws only)
    sigma = optimise_sigma_x(model, smoothed.noise, x, idx, sigma0, sigma_search, budget, outputs, batch_size)
    # 2. theta_x >= sigma_x per dimension (optimisation draws only)
    theta = optimise_theta_x(model, smoothed.noise, x, idx, sigma, theta_search, budget, outputs, batch_size)
    if sampler is not None:  # one table per theta: certify theta on the sampler's menu (rounded down)
        sigma, theta = sampler.menu(sigma).astype(np.float64), sampler.menu(theta)
    # 3-4. certify with fresh draws; keep the isotropic certificate where it is the larger
    certificate, fell_back = certify_with_fallback(smoothed, x, idx, sigma, theta, budget, fallback)
    certificate = certificate.with_noise(sigma, theta, fell_back).replace(idx=np.asarray(idx, dtype=np.int64))
    return AncerResult(sigma, theta, certificate, fell_back)


def optimise_sigma_x(model, noise, x, idx, sigma0, search: SigmaSearch, budget: Budget, outputs, batch_size):
    """sigma_x (B,) float64. The votes search aims at the certification budget (n, alpha): the same
    alpha whatever the fallback, so that an isotropic and an ancer run find the same sigma_x."""
    from .optimise import optimise_sigma

    found = optimise_sigma(
        model,
        noise,
        x,
        sigma0,
        method=search.method,
        iterations=search.iterations,
        lr=search.lr,
        samples=search.samples,
        sigma_min=search.sigma_min,
        sigma_max=search.sigma_max,
        grid_points=search.grid_points,
        refine_steps=search.refine_steps,
        certify_n=budget.n,
        certify_alpha=budget.alpha,
        seed=budget.seed,
        idx=idx,
        outputs=outputs,
        batch_size=batch_size,
    )
    return found.sigma.detach().double().cpu().numpy()


def optimise_theta_x(
    model,
    noise,
    x,
    idx,
    sigma,
    search: ThetaSearch,
    budget: Budget,
    outputs,
    batch_size,
):
    """theta_x (B, *D) float32 on the CPU, >= sigma_x elementwise. Objective 'certified': ANCER's Adam
    answer is the direction, repaired to the largest step along it whose hard-vote forecast radius at
    budget's (n, alpha) reaches sigma_x's (core/theta_search.py)."""
    from .optimise import optimise_theta
    from .theta_search import repair_theta

    found = optimise_theta(
        model,
        noise,
        x,
        torch.as_tensor(np.asarray(sigma), dtype=x.dtype, device=x.device),
        iterations=search.iterations,
        lr=search.lr,
        samples=search.samples,
        kappa=search.kappa,
        tol=search.tol,
        patience=search.patience,
        seed=budget.seed,
        idx=idx,
        outputs=outputs,
        batch_size=batch_size,
    )
    theta = found.theta.detach()
    if search.objective == "certified":
        theta = repair_theta(
            model,
            noise,
            x,
            torch.as_tensor(np.asarray(sigma), dtype=x.dtype, device=x.device),
            theta,
            idx=idx,
            n=budget.n,
            alpha=budget.alpha,
            samples=search.check_samples,
            steps=search.check_steps,
            margin=search.check_margin,
            seed=budget.seed,
            batch_size=batch_size,
        )[0]
    return theta.float().cpu().numpy()


def certify_with_fallback(
    smoothed: Smoothed, x, idx, sigma, theta, budget: Budget, fallback: str = "both", iso_known=None
) -> tuple[Certificates, np.ndarray]:
    """Steps 3-4: (the reported certificates, where the isotropic one was reported).

    sigma (B,), theta (B, *D). iso_known {idx: (cA, counts)}: isotropic certificates whose fresh counts
    are known already (an isotropic run reused: the same ESTIMATE stream at sigma_x), not drawn again.
    """
    iso_theta = torch.as_tensor(np.asarray(sigma), dtype=torch.float32, device=smoothed.device)
    theta = torch.as_tensor(np.asarray(theta), device=smoothed.device).reshape(x.shape)
    if fallback == "select":
        return _select_then_certify(smoothed, x, idx, iso_theta, theta, budget, iso_known or {})
    if fallback == "off":
        aniso = _certify(smoothed, x, idx, theta, budget, budget.alpha)
        return aniso, np.zeros(len(idx), dtype=bool)
    alpha = budget.alpha / 2  # two certificates, alpha/2 each: the reported one holds at alpha
    iso = isotropic_certificates(smoothed, x, idx, iso_theta, budget, alpha, iso_known or {})
    # With the early stop the anisotropic draws end as soon as they cannot reach the isotropic radius:
    # the same choice, and most of its draws saved where the isotropic certificate is the larger.
    # Sequentially (radii), theta_x's draws end once it cannot beat the isotropic grid level.
    settle = iso.radius if budget.early_stop else None
    if budget.radii is not None:
        settle = np.where(iso.prediction == ABSTAIN, -1.0, iso.radius)
    aniso = _certify(smoothed, x, idx, theta, budget, alpha, settle_radius=settle, keep_ties=True)
    fell_back = aniso.radius < iso.radius  # at equal radius theta_x's region contains the ball
    both = iso.where(fell_back, aniso).replace(draws=iso.draws + aniso.draws)
    return both, fell_back


def _certify(smoothed, x, idx, theta, budget: Budget, alpha, select_counts=None, **extra) -> Certificates:
    """CERTIFY at theta (Smoothed.certify_selected); select_counts: the selection draws, when counted."""
    if select_counts is None:
        select_counts = smoothed.selection_counts(x, theta, n0=budget.n0, seed=budget.seed, idx=idx)
    return smoothed.certify_selected(x, theta, select_counts, idx=idx, **_estimation(budget, alpha), **extra)


def _estimation(budget: Budget, alpha: float) -> dict:
    """Smoothed.certify_selected's settings of the estimation draws (their budget, at alpha)."""
    b = budget
    return dict(n=b.n, alpha=alpha, seed=b.seed, early_stop=b.early_stop, radii=b.radii, radii_on=b.radii_on)


def _select_then_certify(smoothed, x, idx, iso_theta, theta, budget: Budget, iso_known):
    """Fallback 'select': forecast both radii from the selection draws (smooth.predicted_radius), then
    certify only the larger forecast, with its own fresh draws at alpha."""
    B, n, alpha = len(idx), budget.n, budget.alpha
    iso_select = smoothed.selection_counts(x, iso_theta, n0=budget.n0, seed=budget.seed, idx=idx)
    aniso_select = smoothed.selection_counts(x, theta, n0=budget.n0, seed=budget.seed, idx=idx)
    forecast_iso = predicted_radius(smoothed.noise, iso_select, n, alpha, iso_theta.double().cpu().numpy())
    min_theta = theta.reshape(B, -1).min(dim=1).values.double().cpu().numpy()
    forecast_aniso = predicted_radius(smoothed.noise, aniso_select, n, alpha, min_theta)
    # ties go to theta_x (at an equal radius its region contains the isotropic ball); where theta_x
    # is forecast to abstain, the isotropic noise is certified
    fell_back = (forecast_aniso < forecast_iso) | (forecast_aniso == 0)
    parts = []
    iso_k, aniso_k = np.flatnonzero(fell_back), np.flatnonzero(~fell_back)
    if len(iso_k):
        rows = torch.as_tensor(iso_k, device=x.device)
        sub = [idx[k] for k in iso_k]
        iso = isotropic_certificates(
            smoothed, x[rows], sub, iso_theta[rows], budget, alpha, iso_known, iso_select[iso_k]
        )
        parts.append((iso_k, iso))
    if len(aniso_k):
        rows = torch.as_tensor(aniso_k, device=x.device)
        sub = [idx[k] for k in aniso_k]
        kw = dict(idx=sub, **_estimation(budget, alpha))
        parts.append((aniso_k, smoothed.certify_selected(x[rows], theta[rows], aniso_select[aniso_k], **kw)))
    return Certificates.combine(B, parts), fell_back


def isotropic_certificates(
    smoothed, x, idx, iso_theta, budget: Budget, alpha, iso_known, select_counts=None
) -> Certificates:
    """The isotropic certificates at sigma_x; those in iso_known are computed from their known counts.
    select_counts: the inputs' selection draws at sigma_x, when already drawn."""
    known = [k for k, i in enumerate(idx) if i in iso_known]
    fresh = [k for k in range(len(idx)) if idx[k] not in iso_known]
    parts = []
    if fresh:
        extra = {} if select_counts is None else {"select_counts": select_counts[fresh]}
        parts.append(
            (
                fresh,
                _certify(
                    smoothed, x[fresh], [idx[k] for k in fresh], iso_theta[fresh], budget, alpha, **extra
                ),
            )
        )
    if known:
        assert budget.radii is None, "sequential counts stop at a look: never reused as fixed-n counts"
        # theta's summary exactly as a fresh certificate computes it (bit-identical records)
        expanded = per_input(iso_theta[known], (len(known), *x.shape[1:]))
        min_theta, geo_theta = theta_summary(expanded, len(known))
        cA = np.array([iso_known[idx[k]][0] for k in known])
        counts = np.array([iso_known[idx[k]][1] for k in known])
        result = certificate_from_counts(
            smoothed.noise,
            cA,
            np.zeros_like(counts),
            counts,
            budget.n,
            alpha,
            min_theta,
            geo_theta,
            slack=smoothed.pA_slack(expanded),
        )
        parts.append((known, result))
    return Certificates.combine(len(idx), parts)
