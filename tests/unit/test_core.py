"""Closed forms and contracts of the core: bounds, noise, sampling streams, constant theta."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from anisocert import _checks
from anisocert.core.bounds import pA_lower, pA_lower_ceiling, top_two_pvalue
from anisocert.core.noise import Gaussian, Uniform, get_noise
from anisocert.core.sampling import BLOCK, Phase, block_seed, count_predictions
from anisocert.core.smooth import ABSTAIN, Smoothed
from anisocert.errors import InfeasibleBudgetError, InputError, InvalidParameterError, UnknownNameError
from tests.linear import Linear2


def test_pA_lower_matches_statsmodels_one_sided():
    n, alpha = 1000, 0.001
    nA = np.array([0, 1, 499, 500, 900, 999, 1000])
    ours = pA_lower(nA, n, alpha)
    ref = [proportion_confint(k, n, alpha=2 * alpha, method="beta")[0] for k in nA]
    np.testing.assert_allclose(ours, np.nan_to_num(ref), rtol=1e-12, atol=0)
    assert ours[0] == 0.0
    assert pA_lower_ceiling(n, alpha) == pytest.approx(ours[-1], rel=1e-12)


def test_l2_ceiling_at_default_budget_is_3_81_sigma():
    gap = Gaussian().gap(pA_lower_ceiling(100_000, 0.001))
    assert 3.80 < gap < 3.82


def test_smallest_certifying_n_is_the_exact_threshold():
    for alpha in (0.1, 0.01, 0.001, 1e-6):
        n = _checks.smallest_certifying_n(alpha)
        assert alpha ** (1 / n) >= 0.5 > alpha ** (1 / (n - 1)) if n > 1 else True
    with pytest.raises(InfeasibleBudgetError, match="use n >= 10"):
        _checks.check_budget(100, 9, 0.001)
    _checks.check_budget(100, 10, 0.001)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "7"])
def test_counts_must_be_positive_integers(bad):
    with pytest.raises(InvalidParameterError, match="must be an integer"):
        _checks.check_budget(bad, 1000, 0.001)


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, float("nan"), float("inf")])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(InvalidParameterError, match="alpha"):
        _checks.check_alpha(alpha)


@pytest.mark.parametrize("theta", [0.0, -0.25, float("nan"), float("inf")])
def test_theta_must_be_positive_and_finite(theta):
    with pytest.raises(InvalidParameterError, match="must be finite and > 0"):
        _checks.check_theta(theta)


def test_inputs_with_nan_are_refused():
    x = torch.zeros(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(InputError, match="position 1"):
        _checks.check_inputs(x)


def test_unknown_noise_lists_choices():
    with pytest.raises(UnknownNameError, match="gaussian"):
        get_noise("laplace")


def test_gap_formulas():
    assert Gaussian().gap(0.9) == pytest.approx(norm.ppf(0.9), rel=1e-15)
    assert Uniform().gap(0.9) == pytest.approx(0.8, rel=1e-15)


@pytest.mark.parametrize("family", [Gaussian(), Uniform()])
def test_unit_noise_has_the_declared_scale(family):
    g = torch.Generator().manual_seed(0)
    u = family.unit((200_000,), g, "cpu")
    std = 1.0 if family.name == "gaussian" else 1 / math.sqrt(3)
    # std estimate error ~ std / sqrt(2 m) = 0.0016 * std; 5 sigma tolerance
    assert abs(float(u.std()) - std) < 5 * std / math.sqrt(2 * 200_000)
    if family.name == "uniform":
        assert float(u.abs().max()) <= 1.0


def test_block_seed_depends_on_every_part():
    base = block_seed(0, 5, Phase.ESTIMATE, 3)
    others = {block_seed(1, 5, 1, 3), block_seed(0, 6, 1, 3), block_seed(0, 5, 0, 3), block_seed(0, 5, 1, 4)}
    assert base not in others and len(others) == 4
    assert 0 <= base < 2**63


def _linear(dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Linear2(torch.randn(dim, generator=g), 0.1), torch.randn(5, dim, generator=g) * 0.3


@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK, 3 * BLOCK + 7])
def test_counts_sum_to_n_for_any_n(n):
    model, x = _linear()
    counts = count_predictions(
        model,
        Gaussian(),
        x,
        torch.full_like(x, 0.5),
        n,
        idx=range(5),
        seed=0,
        phase=Phase.ESTIMATE,
        batch_size=64,
    )
    assert counts.dtype == torch.int64 and counts.shape == (5, 2)
    assert (counts.sum(1) == n).all()


def test_stream_is_independent_of_batch_composition_size_and_order():
    model, x = _linear()
    theta = torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) + 0.2
    kw = dict(seed=3, phase=Phase.ESTIMATE)
    full = count_predictions(
        model, Gaussian(), x, theta, 1234, idx=[10, 11, 12, 13, 14], batch_size=250, **kw
    )
    alone = count_predictions(model, Gaussian(), x[3:4], theta[3:4], 1234, idx=[13], batch_size=17, **kw)
    reordered = count_predictions(
        model, Gaussian(), x.flip(0), theta.flip(0), 1234, idx=[14, 13, 12, 11, 10], batch_size=1000, **kw
    )
    assert torch.equal(full[3], alone[0])
    assert torch.equal(full, reordered.flip(0))
    other_seed = count_predictions(
        model,
        Gaussian(),
        x,
        theta,
        1234,
        idx=[10, 11, 12, 13, 14],
        batch_size=250,
        seed=4,
        phase=Phase.ESTIMATE,
    )
    assert not torch.equal(full, other_seed)


def test_constant_theta_tensor_equals_scalar_sigma_and_hand_computed_radii():
    model, x = _linear()
    smoothed = Smoothed(model, "gaussian", batch_size=500)
    a = smoothed.certify(x, 0.4, n0=100, n=5000, alpha=0.001, seed=2)
    b = smoothed.certify(x, torch.full_like(x, 0.4), n0=100, n=5000, alpha=0.001, seed=2)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.radius, b.radius)
    for k in range(5):
        nA = a.counts[k, a.prediction[k]] if a.prediction[k] != ABSTAIN else 0
        lower = pA_lower(nA, 5000, 0.001)
        if lower >= 0.5:
            want = np.float32(0.4).item() * norm.ppf(lower)  # theta is stored in float32
            assert a.radius[k] == pytest.approx(want, rel=1e-12)
            assert a.proxy_radius[k] == pytest.approx(want, rel=1e-6)
        else:
            assert a.prediction[k] == ABSTAIN and a.radius[k] == 0


def test_anisotropic_radius_and_proxy_radius_by_hand():
    model, x = _linear()
    theta = torch.linspace(0.1, 0.6, 6).expand(5, 6)
    res = Smoothed(model, "uniform", batch_size=500).certify(x, theta, n0=50, n=2000, alpha=0.01, seed=0)
    t = theta[0].double().numpy()
    for k in np.flatnonzero(res.prediction != ABSTAIN):
        gap = 2 * (res.pA_lower[k] - 0.5)
        assert res.gap[k] == pytest.approx(gap, rel=1e-14)
        assert res.radius[k] == pytest.approx(t.min() * gap, rel=1e-6)
        assert res.proxy_radius[k] == pytest.approx(math.exp(np.log(t).mean()) * gap, rel=1e-6)


def test_selection_draws_are_not_reused_in_the_bound():
    model, x = _linear()
    res = Smoothed(model, "gaussian", batch_size=500).certify(x, 0.5, n0=BLOCK, n=BLOCK, alpha=0.01, seed=0)
    assert not np.array_equal(res.counts_select, res.counts)  # other streams (phases)


def test_predict_abstains_on_a_coin_flip_and_answers_on_a_clear_case():
    w = torch.tensor([1.0, 0.0])
    model = Linear2(w, 0.0)
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    pred = Smoothed(model, "gaussian", batch_size=1000).predict(x, 0.5, n=2000, alpha=0.001, seed=0)
    assert pred[0] == ABSTAIN and pred[1] == 1
    assert top_two_pvalue(1000, 0) < 1e-10
