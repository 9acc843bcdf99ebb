"""Optional stopping does not inflate false certifications (issue 16): linear classifiers with a closed-form
pA placed 1 % below and above a grid radius, >= 10,000 independent sequential certifications per case."""

import numpy as np
import pytest

from anisocert._selftest_sequential import (
    SEQUENTIAL_CASES,
    certify_false_rate,
    seq_problem,
    simulated_false_rate,
)
from anisocert.core.sequential import LookSchedule

T, N, ALPHA = 20_000, 10_000, 0.05


@pytest.mark.parametrize(
    "case", SEQUENTIAL_CASES, ids=lambda c: f"{c[0]}-{'aniso' if c[1] else 'iso'}-{c[3]}"
)
def test_sequential_false_certification_rate_is_at_most_alpha(case):
    noise, aniso, radius, side = case
    problem = seq_problem(
        noise, aniso, radius * side, np.random.default_rng([3, int(aniso), int(side * 100)])
    )
    assert problem.exact_radius == pytest.approx(radius * side, rel=1e-6)
    rate, bound, draws = simulated_false_rate(noise, problem, T, N, ALPHA, seed=11)
    assert rate <= bound  # the (1 - 1e-6) quantile of Binomial(T, alpha) / T
    assert draws > 1000  # near a grid radius the rule looks often: the case exercises optional stopping


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_reusing_alpha_at_every_look_fails_the_same_check(noise):
    # the power of the check above: the same looks, each at the full alpha (union bound ignored)
    problem = seq_problem(
        noise, False, {"gaussian": 0.25, "uniform": 0.1}[noise] * 1.01, np.random.default_rng(5)
    )
    looks = LookSchedule.geometric(N, ALPHA).looks
    naive = LookSchedule(looks, (ALPHA,) * len(looks), ALPHA * len(looks))
    rate, bound, _ = simulated_false_rate(noise, problem, T, N, ALPHA, seed=11, schedule=naive)
    assert rate > bound
    sound, _, _ = simulated_false_rate(noise, problem, T, N, ALPHA, seed=11)
    assert sound < ALPHA < rate


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_sequential_certify_with_a_torch_model_is_sound(noise):
    radius = {"gaussian": 0.25, "uniform": 0.1}[noise] * 1.01
    problem = seq_problem(noise, True, radius, np.random.default_rng(9))
    rate, bound, draws = certify_false_rate(noise, problem, 2000, 2000, ALPHA, seed=4)
    assert rate <= bound and 200 <= draws <= 2000
