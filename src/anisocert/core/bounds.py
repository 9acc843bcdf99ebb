"""Binomial bounds: one-sided Clopper-Pearson lower bound on pA, and PREDICT's binomial test."""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binomtest

__all__ = ["pA_lower", "pA_lower_ceiling", "top_two_pvalue"]


def pA_lower(nA, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on pA from nA successes in n fresh draws.

    Equals statsmodels' ``proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0]``.
    Vectorised over nA; 0 where nA = 0. float64, never rounded.
    """
    nA = np.asarray(nA, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lower = beta.ppf(alpha, nA, n - nA + 1)
    return np.where(nA > 0, lower, 0.0)


def pA_lower_ceiling(n: int, alpha: float) -> float:
    """pA_lower when every one of the n draws agrees: alpha ** (1 / n). Bounds the largest gap."""
    return float(alpha ** (1.0 / n))


def top_two_pvalue(n1: int, n2: int) -> float:
    """Two-sided binomial test p-value of n1 vs n2 at p = 1/2 (Cohen's PREDICT)."""
    if n1 + n2 == 0:
        return 1.0
    return float(binomtest(int(n1), int(n1 + n2), 0.5).pvalue)
