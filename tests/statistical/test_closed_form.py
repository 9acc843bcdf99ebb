"""Linear base classifiers: smoothed probabilities are exact, so certificates can be checked against truth.

Gaussian: P(f(x + e) = 1) = Phi((w.x + b) / ||theta * w||_2) and the exact certified ellipsoid touches the
decision hyperplane: gap_true = |w.x + b| / ||theta * w||. Uniform along one axis k:
P = clip((x_k - c + theta_k) / (2 theta_k), 0, 1), and the l1 cross-polytope's vertex on axis k reaches the
boundary: gap_true * theta_k = |x_k - c|.
"""

import numpy as np
import torch
from scipy.stats import norm

from anisocert.core.smooth import ABSTAIN, Smoothed
from tests.linear import Linear2

DIM = 8


def _problem(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(DIM, generator=g)
    x = torch.randn(16, DIM, generator=g) * 0.4
    theta = torch.rand(16, DIM, generator=g) * 0.6 + 0.05
    return Linear2(w, 0.2), w, x, theta


def test_gaussian_anisotropic_probability_converges_and_ellipsoid_never_crosses_the_hyperplane():
    model, w, x, theta = _problem(0)
    margin = (x @ w + 0.2).double()
    scale = (theta * w).norm(dim=1).double()
    p_true = norm.cdf((margin.abs() / scale).numpy())
    gap_true = (margin.abs() / scale).numpy()
    smoothed = Smoothed(model, "gaussian", batch_size=4000)
    errors = []
    for n in (1_000, 10_000, 100_000):
        # every draw is made (no early stop): this test measures the estimate of p itself
        res = smoothed.certify(x, theta, n0=100, n=n, alpha=0.001, seed=1, early_stop=False)
        ok = res.prediction != ABSTAIN
        assert np.all(res.prediction[ok] == (margin.numpy()[ok] > 0))
        # soundness: the certified ellipsoid {||d / theta|| <= gap} stays on its side of the hyperplane
        assert np.all(res.gap[ok] <= gap_true[ok])
        p_hat = res.counts[np.arange(16), (margin.numpy() > 0).astype(int)] / n
        # 6-sigma binomial tolerance per input
        assert np.all(np.abs(p_hat - p_true) <= 6 * np.sqrt(p_true * (1 - p_true) / n) + 1e-12)
        errors.append(np.mean(gap_true[ok] - res.gap[ok]))
    # ... and it approaches the hyperplane as n grows
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_uniform_axis_classifier_cross_polytope_vertex_reaches_the_boundary():
    k, c = 2, 0.1
    w = torch.zeros(DIM)
    w[k] = 1.0
    model = Linear2(w, -c)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(16, DIM, generator=g) * 0.6 - 0.3
    theta = torch.rand(16, DIM, generator=g) * 0.6 + 0.3
    m = (x[:, k] - c).double().numpy()
    t = theta[:, k].double().numpy()
    p_true = np.clip((np.abs(m) + t) / (2 * t), 0, 1)
    smoothed = Smoothed(model, "uniform", batch_size=4000)
    slack = []
    for n in (1_000, 100_000):
        res = smoothed.certify(x, theta, n0=100, n=n, alpha=0.001, seed=2, early_stop=False)
        ok = res.prediction != ABSTAIN
        assert np.all(res.prediction[ok] == (m[ok] > 0))
        # the vertex of the l1 region along axis k: gap * theta_k <= |x_k - c|
        assert np.all(res.gap[ok] * t[ok] <= np.abs(m[ok]) + 1e-7)
        p_hat = res.counts[np.arange(16), (m > 0).astype(int)] / n
        assert np.all(np.abs(p_hat - p_true) <= 6 * np.sqrt(p_true * (1 - p_true) / n) + 1e-12)
        slack.append(np.mean(np.abs(m[ok]) - res.gap[ok] * t[ok]))
    assert slack[1] < slack[0] and slack[1] < 0.02
