"""The certified ANCER objective (core/theta_search.py) against closed forms.

- A 2-D toy whose boundary is an axis-aligned band (x_0 never matters): the repaired theta keeps the
  anisotropic certificate under ``--fallback both`` (the same estimation draws at sigma_x and theta_x give
  the same votes), its proxy radius is several times the isotropic one, its radius at least the isotropic.
- A linear classifier, where pA(theta) = Phi(margin / ||theta * w||) exactly: the repaired theta meets the
  constraint min(theta) * gap(theta) >= sigma_x * gap(sigma_x) in closed form up to the check's binomial
  error, and the check's vote share agrees with the exact pA within that error.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import norm

from anisocert.core.ancer import certify_with_fallback, optimise_theta_x
from anisocert.core.noise import get_noise
from anisocert.core.sampling import Phase, unit_noise
from anisocert.core.settings import Budget, ThetaSearch
from anisocert.core.smooth import Smoothed
from anisocert.core.theta_search import forecast_radius, repair_theta
from tests.linear import Linear2
from tests.unit.test_optimise import Band

X = torch.tensor([[0.0, 0.5], [0.7, 0.5], [0.0, 0.3], [0.0, 0.75], [0.0, 0.15]])
IDX = [0, 1, 2, 3, 4]
CERTIFIED = ThetaSearch(iterations=50, samples=100, objective="certified", check_samples=400)


@pytest.mark.parametrize(("noise", "sigma"), [("gaussian", 0.25), ("uniform", 0.4)])
def test_band_keeps_the_anisotropic_certificate_with_a_much_larger_volume(noise, sigma):
    model, budget = Band(), Budget(n0=100, n=2000, alpha=0.001, seed=11)
    sig = np.full(len(IDX), sigma)
    # theta's draws on seed 0, the certificates' on seed 11
    theta = optimise_theta_x(
        model, get_noise(noise), X, IDX, sig, CERTIFIED, replace(budget, seed=0), "logits", 1000
    )
    theta = torch.as_tensor(theta)
    assert bool((theta[:, 0] > 3 * sigma).all())  # the free axis is stretched
    smoothed = Smoothed(model, noise)
    kept, fell_back = certify_with_fallback(smoothed, X, IDX, sig, theta, budget, "both")
    iso = smoothed.certify(X, sig, n0=100, n=2000, alpha=0.0005, seed=11, idx=IDX)  # both's alpha/2
    assert not fell_back.any()  # the anisotropic certificate is reported on every input
    assert (kept.prediction == 1).all()
    assert (kept.proxy_radius > 1.7 * iso.proxy_radius).all()
    assert (kept.radius >= iso.radius).all()


def _exact_pA(w, margin, theta):
    return norm.cdf(margin / float(torch.linalg.vector_norm(theta * w)))


def test_linear_classifier_meets_the_constraint_in_closed_form():
    # f(x) = 1 iff w.x + b > 0; w has two dead coordinates (theta may grow there for free) and two live ones
    w, b = torch.tensor([1.0, 0.6, 0.0, 0.0]), -0.5
    model, noise = Linear2(w, b), get_noise("gaussian")
    x = torch.tensor([[1.0, 0.5, 0.3, 0.7], [0.9, 0.2, 0.1, 0.1], [1.2, 0.4, 0.5, 0.5]])
    idx, sigma, m, n, alpha = [3, 4, 5], 0.4, 2000, 10_000, 0.001
    margins = (x @ w + b).numpy()
    # a direction that also grows the live coordinates: the repair must pull them back
    direction = torch.tensor([2.0, 1.5, 6.0, 6.0]).expand(3, 4) * sigma
    theta, t = repair_theta(
        model, noise, x, torch.full((3,), sigma), direction, idx=idx, n=n, alpha=alpha, samples=m, steps=10
    )
    assert (t < 1).all()
    for k in range(3):
        p_iso = norm.cdf(margins[k] / (sigma * float(torch.linalg.vector_norm(w))))
        p_theta = _exact_pA(w, margins[k], theta[k])
        # the constraint in closed form: pA(theta) may fall short of pA(sigma_x) only by the check's
        # binomial error on the flips it could not see (CRN: the difference of two shares of m draws)
        se = math.sqrt(2 * p_iso * (1 - p_iso) / m)
        target = forecast_radius(noise, p_iso * m, m, n, alpha, sigma)
        exact = forecast_radius(noise, p_theta * m, m, n, alpha, float(theta[k].min()))
        slack = forecast_radius(noise, (p_iso - 4 * se) * m, m, n, alpha, sigma)
        assert exact >= slack, (k, exact, target)
        # the forecast (the check's share of votes at theta) agrees with the exact pA within binomial error
        u = unit_noise(
            noise,
            (m, 4),
            seed=0,
            idx=idx[k],
            phase=Phase.THETA_CHECK,
            block=0,
            generator=torch.Generator(),
            device="cpu",
        )
        share = float((model(x[k] + theta[k] * u).argmax(1) == 1).float().mean())
        assert abs(share - p_theta) <= 4 * math.sqrt(p_theta * (1 - p_theta) / m) + 1 / m
        # and the volume grew where the votes cannot move
        assert float(theta[k, 2:].min()) > 4 * sigma
        assert math.exp(float(theta[k].log().mean())) > 1.5 * sigma
