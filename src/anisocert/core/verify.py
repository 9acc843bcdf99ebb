"""Independent all-pairs check that no two regions of different classes overlap (spec section 6).

Shares no code with `anisocert.core.memory` or `anisocert.core.regions`: pairs are pre-filtered with enclosing l_p
balls (float64 Gram blocks, then exact differences), and each surviving pair (i, j), i < j, gets its
overlap depth

    g_ij = min over z in region i of ||(z - c_j) / axes_j||_p,

i.e. the gauge of region j at the point of region i nearest to it: g <= 1 iff the closed regions meet,
g = 1 when they only touch. l1: a linear program solved by `scipy.optimize.linprog` (HiGHS, tolerances
1e-10). l2: the KKT conditions of the nearest-point problem reduce to one monotone equation in the
Lagrange multiplier, solved by `scipy.optimize.brentq`. Either way the minimiser is pulled into region i
if round-off left it outside and the gauge is re-evaluated there (l2 reports that witness value; l1 the
smaller of it and the LP optimum). Regions of gap 0 are single points: a point conflicts when it lies in
a foreign region (or coincides with a foreign point).

Tolerance: a pair conflicts iff g_ij < 1 - tol (default tol = 1e-9). Touching pairs (g = 1) and pairs
overlapping by less than a relative 1e-9 are not reported; this keeps solver round-off (about 1e-10)
from deciding the answer. `CertificateMemory` separates regions strictly (its exact test plus a
round-down of at least 1e-13), so it never relies on this tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import brentq, linprog

from ..errors import InputError, InvalidParameterError, UnknownNameError
from .certificates import ABSTAIN, Certificates

__all__ = ["VerifyReport", "verify_certificates", "verify_regions"]

_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
_BLOCK_ENTRIES = 1 << 22  # Gram-block size (float64 entries) of the pre-filter


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of `verify_regions`.

    conflicts: pairs (i, j), i < j, of different non-abstain classes whose regions overlap (g_ij < 1 - tol);
    pairs_checked: pairs that passed the enclosing-ball pre-filter and went to the exact solver;
    pairs_foreign: all pairs of different non-abstain classes; depths: g_ij of each checked pair.
    """

    conflicts: list[tuple[int, int]]
    pairs_checked: int
    pairs_foreign: int = 0
    tol: float = 1e-9
    depths: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when no two regions of different classes overlap."""
        return not self.conflicts


def verify_regions(centers, thetas, gaps, predictions, norm: str, *, tol: float = 1e-9) -> VerifyReport:
    """Check all pairs of regions {||(z - centers[i]) / (gaps[i] thetas[i])||_p <= 1} with different classes.

    Parameters
    ----------
    centers : array of shape (M, dim)
    thetas : array of shape (M, dim) (or (M,) for isotropic regions), > 0
    gaps : array of shape (M,), >= 0 (0: the region is the single point centers[i])
    predictions : int array of shape (M,); ABSTAIN (-1) regions are ignored
    norm : {"l2", "l1"}
    tol : float, default 1e-9
        Relative overlap below which a pair is not reported (touching regions are not conflicts).

    Returns
    -------
    VerifyReport
        Conflicting pairs (i, j) with i < j, in increasing order, and how many pairs were checked.
    """
    C, A, preds = _validate(centers, thetas, gaps, predictions, norm, tol)
    foreign = (preds[:, None] != preds[None, :]) & (preds[:, None] != ABSTAIN) & (preds[None, :] != ABSTAIN)
    foreign = np.triu(foreign, k=1)  # pairs i < j
    pairs = _near_pairs(C, A, norm, foreign)
    conflicts, depths = [], {}
    for i, j in pairs:
        g = _depth(C[i], A[i], C[j], A[j], norm)
        depths[(i, j)] = g
        if g < 1.0 - tol:
            conflicts.append((i, j))
    return VerifyReport(conflicts, len(pairs), int(foreign.sum()), tol, depths)


def verify_certificates(certs: Certificates, centers, norm: str, *, tol: float = 1e-9) -> VerifyReport:
    """`verify_regions` on the regions of a run's certificates (theta, or sigma where isotropic) around
    their inputs, centers (M, dim)."""
    centers = np.asarray(centers, dtype=np.float64)
    thetas = certs.theta_rows(centers.shape[1]) if len(certs) else np.zeros_like(centers)
    return verify_regions(centers, thetas, certs.gap, certs.prediction, norm, tol=tol)


def _validate(centers, thetas, gaps, predictions, norm, tol):
    if norm not in ("l2", "l1"):
        raise UnknownNameError(f"norm={norm!r} is not known; use 'l2' or 'l1'")
    C = np.asarray(centers, dtype=np.float64)
    if C.ndim != 2:
        raise InputError(f"centers must have shape (M, dim), got {C.shape}")
    T = np.asarray(thetas, dtype=np.float64)
    if T.ndim == 1:
        T = np.repeat(T[:, None], C.shape[1], axis=1) if T.shape[0] == C.shape[0] else T
    g = np.asarray(gaps, dtype=np.float64).reshape(-1)
    preds = np.asarray(predictions).reshape(-1)
    if T.shape != C.shape or g.shape != (C.shape[0],) or preds.shape != (C.shape[0],):
        raise InputError(
            f"centers {C.shape}, thetas {T.shape}, gaps {g.shape} and predictions {preds.shape} must "
            "describe the same M regions: (M, dim), (M, dim), (M,), (M,)"
        )
    if not (np.isfinite(C).all() and np.isfinite(T).all() and (T > 0).all() and np.isfinite(g).all()):
        raise InvalidParameterError("centers, thetas and gaps must be finite, and thetas > 0")
    if (g < 0).any():
        raise InvalidParameterError(f"gaps must be >= 0, got {g.min()}; an abstention has gap 0")
    if not 0 <= tol < 1:
        raise InvalidParameterError(f"tol={tol} must be in [0, 1); the usual value is 1e-9")
    return C, g[:, None] * T, preds.astype(np.int64)


def _near_pairs(C, A, norm, wanted) -> list[tuple[int, int]]:
    """Pairs (i, j) with wanted[i, j] whose enclosing l_p balls (radius max axes) meet.

    A Gram block gives squared l2 distances with a generous round-off slack (l2 <= l1, so it also
    bounds l1 distances from below); the kept pairs get exact distances from coordinate differences.
    """
    M = C.shape[0]
    if M < 2:
        return []
    X = C - C.mean(axis=0)
    sq = np.einsum("ij,ij->i", X, X)
    R = A.max(axis=1)
    slack = 16.0 * (C.shape[1] + 2) * np.finfo(np.float64).eps
    rows = max(1, _BLOCK_ENTRIES // M)
    out = []
    for start in range(0, M, rows):
        stop = min(M, start + rows)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (X[start:stop] @ X.T)
        scale = (np.sqrt(sq[start:stop, None]) + np.sqrt(sq[None, :])) ** 2
        reach = R[start:stop, None] + R[None, :]
        ii, jj = np.nonzero(wanted[start:stop] & (d2 <= reach**2 * (1 + 1e-9) + slack * scale))
        for i, j in zip(ii + start, jj):
            diff = C[i] - C[j]
            dist = np.sqrt(diff @ diff) if norm == "l2" else np.abs(diff).sum()
            if dist <= (R[i] + R[j]) * (1 + 1e-9):
                out.append((int(i), int(j)))
    return out


def _depth(a, alpha, b, beta, norm) -> float:
    """g = min over z in region (a, alpha) of ||(z - b) / beta||_p; zero axes make a region a point."""
    pa, pb = not alpha.any(), not beta.any()
    if pa and pb:
        return 0.0 if np.array_equal(a, b) else np.inf
    if pa or pb:  # a point and a region: its gauge in the region
        point, c, w = (a, b, beta) if pa else (b, a, alpha)
        q = (point - c) / w
        return float(np.sqrt(q @ q) if norm == "l2" else np.abs(q).sum())
    return _l2_depth(a, alpha, b, beta) if norm == "l2" else _l1_depth(a, alpha, b, beta)


def _l1_depth(a, alpha, b, beta) -> float:
    """LP over z = a + alpha (w+ - w-), w+- >= 0: min sum v s.t. sum w+ + w- <= 1, v >= |(z - b) / beta|."""
    n = a.size
    d = b - a
    r = sp.diags(alpha / beta)
    ones = sp.csr_matrix(np.ones((1, n)))
    A_ub = sp.vstack(
        [
            sp.hstack([ones, ones, sp.csr_matrix((1, n))]),  # sum |w| <= 1
            sp.hstack([r, -r, -sp.identity(n)]),  # (alpha w - d) / beta <= v
            sp.hstack([-r, r, -sp.identity(n)]),  # -(alpha w - d) / beta <= v
        ],
        format="csr",
    )
    b_ub = np.concatenate([[1.0], d / beta, -d / beta])
    cost = np.concatenate([np.zeros(2 * n), np.ones(n)])
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"linprog failed on an l1 pair: {res.message}")
    w = res.x[:n] - res.x[n : 2 * n]
    w = w / max(1.0, np.abs(w).sum())  # a witness inside region (a, alpha)
    witness = np.abs(a + alpha * w - b) / beta
    return float(min(res.fun, witness.sum()))


def _l2_depth(a, alpha, b, beta) -> float:
    """min over ||w||_2 <= 1 of sum weight (w - p)^2, weight = (alpha/beta)^2, p = (b - a) / alpha.

    If ||p|| <= 1 the center b lies in region (a, alpha): g = 0. Otherwise the constraint is active and
    w(lam) = weight p / (weight + lam) with lam > 0 solving ||w(lam)||^2 = 1, a decreasing function
    that is >= 1 at 0 and <= 1 at max(weight) ||p||.
    """
    weight = (alpha / beta) ** 2
    p = (b - a) / alpha
    pn = np.sqrt(p @ p)
    if pn <= 1.0:
        return 0.0

    def excess(lam: float) -> float:
        w = weight * p / (weight + lam)
        return float(w @ w) - 1.0

    lam = brentq(
        excess, 0.0, float(weight.max() * pn), xtol=1e-300, rtol=4 * np.finfo(np.float64).eps, maxiter=500
    )
    w = weight * p / (weight + lam)
    w = w / max(1.0, np.sqrt(w @ w))  # a witness inside region (a, alpha)
    q = (a + alpha * w - b) / beta
    return float(np.sqrt(q @ q))
