"""Contracts of the noise optimisers: frozen model, positivity, projection, batch independence, errors."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from anisocert.core.noise import get_noise
from anisocert.core.optimise import frozen, optimise_sigma, optimise_theta, surrogate_gap
from anisocert.errors import InputError, InvalidParameterError, UnknownNameError
from tests.linear import Linear2


class Band(torch.nn.Module):
    """Class 1 inside the band |x_1 - c| < w, class 0 below it, class 2 above; x_0 is ignored."""

    def __init__(self, c=0.5, w=0.5, beta=20.0):
        super().__init__()
        self.c, self.w, self.beta = c, w, beta

    def forward(self, x):
        t = x[:, 1] - self.c
        return self.beta * torch.stack([-self.w - t, torch.zeros_like(t), t - self.w], dim=1)


class Recorder(torch.nn.Module):
    """A small MLP that records its parameters' requires_grad flags at every call."""

    def __init__(self, dim=4, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim, 16), torch.nn.Tanh(), torch.nn.Linear(16, classes)
        )
        self.net[2].bias.requires_grad_(False)  # a mixed state that must come back as it was
        self.seen = set()

    def forward(self, x):
        self.seen.add(tuple(p.requires_grad for p in self.parameters()))
        return self.net(x)


def _p1_linear2(s0, scale):
    """P-soft of Linear2: E[sigmoid(2 s)], s ~ N(s0, scale^2), by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w / (1 + np.exp(-2 * (s0 + scale * z)))) / math.sqrt(2 * math.pi))


def _iso_objective_linear2(s0, norm_w, sigma):
    """sigma / 2 * (Phi^-1(p1) - Phi^-1(p2)) with the clamp, in closed form for Linear2."""
    p1 = np.clip(_p1_linear2(s0, sigma * norm_w), 0.001, 0.999)
    return sigma / 2 * (norm.ppf(p1) - norm.ppf(1 - p1))


LINEAR = Linear2(torch.tensor([3.0, 4.0]), b=-1.0)  # ||w|| = 5


def test_surrogate_gap_matches_closed_form_on_linear_model():
    x = torch.tensor([[0.3, 0.1], [0.2, 0.2]])  # s = 0.3 and 0.4
    gap = surrogate_gap(LINEAR, "gaussian", x, 0.1, samples=20_000, seed=5).numpy()
    for i, s0 in enumerate([0.3, 0.4]):
        p1 = _p1_linear2(s0, 0.1 * 5)
        # sd of p1_hat <= 0.5 / sqrt(20000) = 0.0035; 4 sd in gap units: 4 * 0.0035 * 2 / phi(Phi^-1(p1))
        tol = 4 * 0.0035 * 2 / norm.pdf(norm.ppf(p1))
        assert gap[i] == pytest.approx(norm.ppf(p1) - norm.ppf(1 - p1), abs=tol)


def test_gradient_sigma_increases_the_closed_form_objective():
    x = torch.tensor([[0.3, 0.1]])  # s0 = 0.3: the objective grows with sigma towards s0 / ||w||
    result = optimise_sigma(LINEAR, "gaussian", x, 0.05, iterations=150, samples=50)
    sigma = float(result.sigma[0])
    before, after = _iso_objective_linear2(0.3, 5.0, 0.05), _iso_objective_linear2(0.3, 5.0, sigma)
    assert sigma > 0.1 and after > before + 0.5 * (0.3 / 5 - before)
    assert result.iterations_run.tolist() == [150] and result.forward_passes.tolist() == [150 * 50]
    assert result.backward_passes.tolist() == [150 * 50]


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_sigma_stays_positive_with_a_huge_learning_rate(noise):
    x = torch.tensor([[0.3, 0.1], [0.0, 0.5]])
    result = optimise_sigma(LINEAR, noise, x, 0.25, iterations=30, lr=1e4, samples=20)
    assert bool(torch.isfinite(result.sigma).all()) and bool((result.sigma >= 0.025 * (1 - 1e-6)).all())
    # sigma0 = 0.6 is beyond the band's optimum (about 0.25): one huge step lands exactly on the floor
    first = optimise_sigma(Band(), noise, torch.tensor([[0.0, 0.5]]), 0.6, iterations=1, lr=1e4, samples=50)
    assert first.sigma.tolist() == pytest.approx([0.06])


def test_model_is_frozen_and_restored_without_grads():
    model = Recorder()
    before = [p.requires_grad for p in model.parameters()]
    x = torch.randn(3, 4)
    optimise_sigma(model, "gaussian", x, 0.5, iterations=3, samples=10)
    sigma = torch.full((3,), 0.5)
    optimise_theta(model, "gaussian", x, sigma, iterations=3, samples=10, batch_size=7)  # two-pass path
    optimise_sigma(model, "uniform", x, 0.5, method="search", samples=10)
    assert model.seen == {(False,) * len(before)}
    assert [p.requires_grad for p in model.parameters()] == before
    assert all(p.grad is None for p in model.parameters())


def test_frozen_restores_flags_after_an_error():
    model = Recorder()
    with pytest.raises(RuntimeError), frozen(model):
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]


@pytest.mark.parametrize("method", ["gradient", "search", "votes"])
def test_sigma_does_not_depend_on_the_batch(method):
    model, x = Recorder(), torch.randn(3, 4)
    common = dict(iterations=20, samples=30, seed=7, method=method)
    together = optimise_sigma(model, "gaussian", x, 0.5, idx=[10, 11, 12], **common).sigma
    alone = optimise_sigma(model, "gaussian", x[1:2], 0.5, idx=[11], **common).sigma
    chunked = optimise_sigma(model, "gaussian", x, 0.5, idx=[10, 11, 12], batch_size=13, **common).sigma
    other = optimise_sigma(model, "gaussian", x[1:2], 0.5, idx=[12], **common).sigma
    torch.testing.assert_close(alone, together[1:2], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(chunked, together, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(other, alone)  # the draws really follow idx


def test_two_pass_gradient_equals_the_one_pass_gradient():
    """samples > batch_size takes psi first, then chunked vector-Jacobian products: the same gradient.

    (Compared on one step: over many Adam steps, the near-ties of min(theta) in the ANCER objective
    send its gradient to whichever coordinate rounding makes smallest, so whole runs may differ.)"""
    from anisocert.core._surrogate import Surrogate
    from anisocert.core.optimise import _ancer_objective
    from anisocert.core.sampling import Phase

    model, x = Recorder(), torch.randn(3, 4)
    theta = torch.tensor([0.3, 0.5, 0.8])[:, None].expand(3, 4).clone()
    grads = []
    with frozen(model):
        for batch_size in (1000, 16):
            s = Surrogate(
                model,
                get_noise("gaussian"),
                x,
                samples=30,
                seed=3,
                phase=Phase.THETA,
                outputs="logits",
                batch_size=batch_size,
            )
            grads.append(s.value_and_grad(_ancer_objective(s, 2.0), x, theta, [4, 5, 6], block=1))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)
    assert grads[0][1].abs().max() > 1e-3  # a real gradient


def test_theta_does_not_depend_on_the_batch_and_stays_above_sigma():
    model, x = Recorder(), torch.randn(3, 4)
    sigma = torch.tensor([0.3, 0.5, 0.8])
    common = dict(iterations=15, samples=30, seed=3)
    together = optimise_theta(model, "gaussian", x, sigma, idx=[4, 5, 6], **common)
    alone = optimise_theta(model, "gaussian", x[2:], sigma[2:], idx=[6], **common)
    chunked = optimise_theta(
        model, "gaussian", x, sigma, idx=[4, 5, 6], batch_size=64, **common
    )  # 2 per group
    torch.testing.assert_close(alone.theta, together.theta[2:], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(chunked.theta, together.theta, rtol=1e-4, atol=1e-6)
    assert bool((together.theta >= sigma[:, None]).all())
    assert bool((together.theta > sigma[:, None] * 1.01).any())  # it moved
    assert together.sigma.tolist() == pytest.approx(sigma.tolist())


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_theta_projection_holds_elementwise(noise):
    model, x = Recorder(dim=6), torch.randn(5, 6)
    sigma = torch.linspace(0.1, 1.0, 5)
    theta = optimise_theta(model, noise, x, sigma, iterations=20, samples=20, lr=0.5).theta
    assert theta.shape == x.shape and bool((theta >= sigma[:, None]).all())


def test_early_stop_keeps_the_theta_of_the_last_step():
    model, x, sigma = Recorder(), torch.randn(4, 4), torch.full((4,), 0.4)
    stopped = optimise_theta(model, "gaussian", x, sigma, iterations=60, samples=20, tol=1.0, patience=5)
    steps = stopped.iterations_run.tolist()
    assert all(10 <= s < 60 and s % 5 == 0 for s in steps)
    assert stopped.forward_passes.tolist() == [20 * s for s in steps]
    for i, s in enumerate(steps):  # the same input run for exactly s steps without early stopping
        plain = optimise_theta(
            model, "gaussian", x[i : i + 1], sigma[i : i + 1], iterations=s, samples=20, idx=[i]
        )
        torch.testing.assert_close(plain.theta, stopped.theta[i : i + 1], rtol=1e-4, atol=1e-6)


def test_probabilities_give_the_same_sigma_as_logits():
    x = torch.tensor([[0.3, 0.1], [0.1, 0.1]])

    def probs(z):
        return LINEAR(z).softmax(dim=1)

    a = optimise_sigma(LINEAR, "gaussian", x, 0.1, iterations=20, samples=20).sigma
    b = optimise_sigma(probs, "gaussian", x, 0.1, iterations=20, samples=20, outputs="probabilities").sigma
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [2_000, 100_000])
def test_votes_search_reaches_the_linear_classifiers_exact_radius(n):
    # Linear2: the vote share at sigma is Phi(dist / sigma), so the radius certification can report is
    # sigma * Phi^-1(min(Phi(dist / sigma), cap)) = min(dist, sigma * Phi^-1(cap)): at most dist, reached
    # from sigma = dist / Phi^-1(cap) on. The search must get there and not beyond its range.
    x = torch.tensor([[0.3, 0.1], [0.4, 0.05], [0.6, 0.3]])
    dist = ((x @ LINEAR.w + LINEAR.b).abs() / 5.0).numpy()
    found = optimise_sigma(LINEAR, "gaussian", x, 0.05, method="votes", samples=2000, certify_n=n)
    sigma = found.sigma.double().numpy()
    cap_gap = norm.ppf(0.001 ** (1 / n))
    radius = np.minimum(dist, sigma * cap_gap)
    assert np.all(radius >= 0.97 * dist), (sigma, dist / cap_gap)
    assert np.all(sigma <= 0.5 + 1e-6)  # sigma_max = 10 * sigma0
    assert found.backward_passes.tolist() == [0, 0, 0]


def test_search_keeps_the_class_predicted_at_sigma0():
    # two classes: 1 inside the band, 0 outside. Large sigma makes class 0 win with a larger
    # surrogate radius; the search must not trade the prediction for it (the gradient stays local)
    def band2(z):
        t = 20.0 * (0.5 - (z[:, 1] - 0.5).abs())
        return torch.stack([torch.zeros_like(t), t], dim=1)

    x = torch.tensor([[0.0, 0.5]])
    sigma = optimise_sigma(band2, "gaussian", x, 0.25, method="search", samples=200).sigma
    unrestricted = 2.5 / 2 * surrogate_gap(band2, "gaussian", x, 2.5, samples=2000, seed=9)
    kept = sigma / 2 * surrogate_gap(band2, "gaussian", x, sigma, samples=2000, seed=9)
    assert float(unrestricted) > float(kept)  # the trap is real
    assert 0.15 < float(sigma) < 0.4


def test_user_errors_name_the_value():
    x = torch.zeros(2, 2)
    with pytest.raises(UnknownNameError, match="outputs='soft'"):
        optimise_sigma(LINEAR, "gaussian", x, 0.25, outputs="soft")
    with pytest.raises(UnknownNameError, match="method='adam'"):
        optimise_sigma(LINEAR, "gaussian", x, 0.25, method="adam")
    with pytest.raises(InvalidParameterError, match="sigma0=-0.1"):
        optimise_sigma(LINEAR, "gaussian", x, -0.1)
    with pytest.raises(InvalidParameterError, match="sigma_max"):
        optimise_sigma(LINEAR, "gaussian", x, 0.25, sigma_max=0.01)
    with pytest.raises(InvalidParameterError, match="kappa=-1"):
        optimise_theta(LINEAR, "gaussian", x, 0.25, kappa=-1)
    with pytest.raises(InputError, match="2 inputs"):
        optimise_theta(LINEAR, "gaussian", x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InputError, match="idx"):
        optimise_sigma(LINEAR, "gaussian", x, 0.25, idx=[1])
    with pytest.raises(InputError, match="num_classes >= 2"):
        optimise_sigma(lambda z: z[:, :1], "gaussian", x, 0.25)
    with pytest.raises(InputError, match="sum to 1"):
        optimise_sigma(LINEAR, "gaussian", x + 1, 0.25, outputs="probabilities")
