"""The public implementations (PyPI ``ddsmoothing-python`` and ``ancer-python``), called as their scripts do.

They import ``scipy.stats.binom_test``, which SciPy removed; the shim below restores it for the
benchmark only (it is used by PREDICT, never by CERTIFY). Install them with
``pip install --no-deps ancer-python ddsmoothing-python tqdm`` so that torch is left alone.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import scipy.stats
import torch


def _binom_test(x, n=None, p=0.5, alternative="two-sided"):
    return scipy.stats.binomtest(int(x), int(n), p, alternative=alternative).pvalue


if not hasattr(scipy.stats, "binom_test"):
    scipy.stats.binom_test = _binom_test

from ancer.optimization import optimize_ancer  # noqa: E402
from ddsmoothing.certificate import L2Certificate  # noqa: E402
from ddsmoothing.optimization import optimize_isotropic_dds  # noqa: E402
from ddsmoothing.smooth import Smooth  # noqa: E402

__all__ = ["available", "public_model", "dds_sigma", "ancer_theta", "certify"]


def available() -> str:
    """Versions of the public packages, for the report."""
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("ddsmoothing-python", "ancer-python"))


def public_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model ending in softmax, as in the DDRS/ANCER release (their ResNet-18 has a softmax
    layer: the optimisers average its outputs as probabilities). Trainable parameters, as there."""
    wrapped = torch.nn.Sequential(copy.deepcopy(model), torch.nn.Softmax(dim=1)).eval()
    for p in wrapped.parameters():
        p.requires_grad_(True)
    return wrapped


def dds_sigma(model, x, sigma0: float, iterations: int, samples: int = 100, lr: float = 0.04):
    """ddsmoothing's isotropic data-dependent sigma for the batch x (one sigma per input)."""
    B = x.shape[0]
    return optimize_isotropic_dds(
        model=model,
        batch=x,
        certificate=L2Certificate(B, device="cpu"),
        learning_rate=lr,
        sig_0=torch.full((B,), float(sigma0)),
        iterations=iterations,
        samples=samples,
        device="cpu",
    ).detach()


def ancer_theta(model, x, sigma, iterations: int, samples: int = 100, lr: float = 0.04, kappa: float = 2.0):
    """ancer-python's theta for the batch x, started at the isotropic sigma of each input."""
    B = x.shape[0]
    theta0 = torch.ones_like(x) * sigma.reshape(-1, 1, 1, 1)
    return optimize_ancer(
        model, x, L2Certificate(B, device="cpu"), lr, theta0, iterations, samples, kappa=kappa, device="cpu"
    ).detach()


def certify(model, x, theta, *, n0: int, n: int, alpha: float, batch_size: int, num_classes: int):
    """ddsmoothing's Smooth.certify (Cohen's algorithm), one input at a time as in its scripts.

    theta: scalar, (B,) or (B, *D). Returns (prediction, gap, radius, proxy_radius) arrays.
    """
    B = x.shape[0]
    theta = torch.as_tensor(theta, dtype=torch.float32)
    theta = theta.reshape(-1, *([1] * (x.ndim - 1))).expand(B, *x.shape[1:]) if theta.ndim <= 1 else theta
    cert = L2Certificate(1, device="cpu")
    out = np.zeros((4, B))
    for k in range(B):
        smooth = Smooth(model, num_classes, theta[k], cert)
        pred, gap = smooth.certify(x[k], n0, n, alpha, batch_size, device=torch.device("cpu"))
        flat = theta[k].double().flatten()
        gap = float(gap) if pred != Smooth.ABSTAIN else 0.0
        out[:, k] = pred, gap, float(flat.min()) * gap, math.exp(float(flat.log().mean())) * gap
    return out[0].astype(np.int64), out[1], out[2], out[3]
