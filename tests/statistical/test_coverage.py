"""Coverage of the one-sided bound: P(pA_lower > pA) <= alpha, measured over many independent streams."""

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from anisocert.core.smooth import Smoothed
from tests.linear import Linear2

TRIALS = 4000


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_false_certification_rate_is_at_most_alpha(noise):
    # one input repeated TRIALS times: each copy has its own index, hence its own independent noise stream
    alpha, n = 0.05, 200
    model = Linear2(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.tensor([[0.3, 0.0]]).expand(TRIALS, 2)
    sigma = 1.0
    p_true = norm.cdf(0.3 / sigma) if noise == "gaussian" else (0.3 + sigma) / (2 * sigma)
    res = Smoothed(model, noise, batch_size=20_000).certify(x, sigma, n0=20, n=n, alpha=alpha, seed=7)
    selected_right = res.counts_select.argmax(1) == 1
    exceed = np.mean(selected_right & (res.pA_lower > p_true))
    # binomial tolerance: the (1 - 1e-6) upper quantile of Binomial(TRIALS, alpha) / TRIALS
    assert exceed <= binom.ppf(1 - 1e-6, TRIALS, alpha) / TRIALS
    # and the bound is not vacuous: it is close to alpha's scale, far below a point estimate's ~0.5
    naive = np.mean(res.counts[:, 1] / n > p_true)
    assert naive > 0.3
