"""Sequential certification: the look schedule, the bounds, the stopping rule, and the noise streams."""

import numpy as np
import pytest
import torch
from scipy.stats import beta, norm
from statsmodels.stats.proportion import proportion_confint

from anisocert.core.bounds import pA_lower
from anisocert.core.noise import get_noise
from anisocert.core.sampling import Phase, count_predictions
from anisocert.core.sequential import (
    LookSchedule,
    binomial_draws,
    grid_level,
    pA_upper,
    parse_radii,
    run_looks,
    settled,
)
from anisocert.core.smooth import Smoothed
from anisocert.errors import InvalidParameterError, UnknownNameError
from tests.linear import Linear2


def test_geometric_schedule_spends_at_most_alpha():
    s = LookSchedule.geometric(100_000, 0.001, ratio=2.0)
    assert s.looks == (200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 100_000)
    assert sum(s.alphas) <= 0.001 and sum(s.alphas) > 0.001 * (1 - 1e-9)
    assert s.alphas[-1] == pytest.approx(0.0008) and len(set(s.alphas[:-1])) == 1
    assert LookSchedule.geometric(150, 0.01).looks == (150,)  # one look: all of alpha
    assert LookSchedule.geometric(3000, 0.01).looks == (200, 300, 400, 600, 1000, 1500, 2200, 3000)
    assert LookSchedule.geometric(1000, 0.01, first=300, ratio=1.5).looks == (300, 400, 600, 1000)


def test_schedule_refuses_bad_values():
    with pytest.raises(InvalidParameterError, match="multiple of 100"):
        LookSchedule.geometric(1000, 0.01, first=150)
    with pytest.raises(InvalidParameterError, match="ratio"):
        LookSchedule.geometric(1000, 0.01, ratio=1.0)
    with pytest.raises(AssertionError):
        LookSchedule((100, 200), (0.01, 0.01), 0.01)  # spends 2 alpha


def test_upper_bound_is_clopper_pearson():
    nA, n = np.array([0, 3, 50, 99, 100]), 100
    expected = proportion_confint(nA, n, alpha=2 * 0.01, method="beta")[1]
    assert np.allclose(pA_upper(nA, n, 0.01), expected, rtol=1e-12)
    assert pA_upper(100, 100, 0.01) == 1.0
    assert np.allclose(pA_upper(7, 20, 0.05), beta.ppf(0.95, 8, 13))


def test_parse_radii_and_grid_level():
    grid = parse_radii("0.5,0.25, 1.0")
    assert grid.tolist() == [0.0, 0.25, 0.5, 1.0]
    for bad in ("", "0.5,-1", "nan", "0", "a,b"):
        with pytest.raises(InvalidParameterError, match="radii"):
            parse_radii(bad)
    g = get_noise("gaussian")
    # sigma 0.25: radius 0.25 exactly at pA = Phi(1); full precision, no rounding up
    p = np.array([0.4, 0.5, norm.cdf(1.0), np.nextafter(norm.cdf(1.0), 0), 0.9999])
    assert grid_level(g, p, 0.25, grid).tolist() == [-1, 0, 1, 0, 2]


def test_stop_rule_certain_inputs_stop_early_and_unsure_ones_draw_all():
    g, grid = get_noise("gaussian"), parse_radii("0.25,0.5")
    s = LookSchedule.geometric(10_000, 0.001, ratio=2.0)
    # all 200 draws agree: radius 0.5 (pA_lower >= Phi(2)) is not reached yet at 200 draws
    assert not settled(g, [200], 0, s, 0.25, grid)[0]
    assert settled(g, [1600], 3, s, 0.25, grid)[0]  # 1,600 agreeing draws certify 0.5, the top
    assert settled(g, [60], 0, s, 0.25, grid)[0]  # 30 %: abstain is certain
    assert not settled(g, [101], 0, s, 0.25, grid)[0]  # near 1/2: open
    assert settled(g, [101], len(s.looks) - 1, s, 0.25, grid)[0]  # the last look always stops
    # another certificate already holds the top level: no reason to draw on
    assert settled(g, [200], 0, s, 0.25, grid, floor=2)[0]


def test_run_looks_reports_the_stopping_look_and_its_alpha():
    g, grid = get_noise("gaussian"), parse_radii("0.25,0.5")
    s = LookSchedule.geometric(10_000, 0.001)
    # certain, certain to abstain, and just above radius 0.25 (pA = Phi(1) + 0.004): undecided to the end
    pA = [1.0, 0.3, norm.cdf(1.0) + 0.004]
    res = run_looks(binomial_draws(pA, np.random.default_rng(0)), [0, 0, 0], 2, g, s, 0.25, grid)
    assert res.counts.sum(axis=1).tolist() == res.n.tolist()
    assert res.n[0] < 10_000 and res.n[1] == 200 and res.n[2] == 10_000
    assert res.alpha.tolist() == [s.alphas[k] for k in res.stop]


def test_rounds_continue_each_inputs_noise_stream():
    # a round starting at draw 300 counts exactly draws 300..n-1 of the stream a fixed-n call counts
    model, noise = Linear2(torch.tensor([1.0, -0.5]), 0.1), get_noise("gaussian")
    x, theta = torch.tensor([[0.2, 0.1], [0.0, 0.3]]), torch.full((2, 2), 0.5)
    kw = dict(idx=[4, 9], seed=3, phase=Phase.ESTIMATE, batch_size=250, num_classes=2)
    whole = count_predictions(model, noise, x, theta, 1000, **kw)
    head = count_predictions(model, noise, x, theta, 300, **kw)
    tail = count_predictions(model, noise, x, theta, 1000, start=300, **kw)
    assert torch.equal(head + tail, whole) and int(tail.sum()) == 2 * 700


def test_sequential_certify_counts_are_the_fixed_n_streams_prefix():
    model = Linear2(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.tensor([[0.6, 0.0], [0.3, 0.0], [0.05, 0.0], [-0.5, 0.0]])
    sm = Smoothed(model, "gaussian", batch_size=700)
    res = sm.certify(x, 0.5, n0=50, n=5000, alpha=0.01, seed=1, idx=[0, 5, 6, 8], radii=[0.25, 0.5])
    drawn = res.drawn
    assert drawn.max() <= 5000 and drawn.min() >= 200 and len(set(drawn.tolist())) > 1
    for k, i in enumerate([0, 5, 6, 8]):
        prefix = count_predictions(
            model,
            sm.noise,
            x[k : k + 1],
            torch.full((1, 2), 0.5),
            int(drawn[k]),
            idx=[i],
            seed=1,
            phase=Phase.ESTIMATE,
            batch_size=1000,
            num_classes=2,
        )
        assert prefix[0].tolist() == res.counts[k].tolist()
    # the certificate is the lower bound at the stopping look's alpha_k (< alpha)
    s = LookSchedule.geometric(5000, 0.01)
    alpha_k = np.array([s.alphas[s.looks.index(int(m))] for m in drawn])
    nA = res.counts[np.arange(4), res.counts_select.argmax(1)]
    assert np.array_equal(res.pA_lower, pA_lower(nA, drawn, alpha_k))
    # the same inputs in another batch size and order: the same records
    again = sm.certify(
        x[[2, 0, 3, 1]], 0.5, n0=50, n=5000, alpha=0.01, seed=1, idx=[6, 0, 8, 5], radii=[0.25, 0.5]
    )
    assert np.array_equal(again.counts, res.counts[[2, 0, 3, 1]])
    with pytest.raises(UnknownNameError, match="radii_on"):
        sm.certify(x, 0.5, n=5000, radii=[0.5], radii_on="volume")
