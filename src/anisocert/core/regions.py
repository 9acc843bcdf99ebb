"""Geometry of certified regions: containment, exact intersection tests and scale-downs (spec section 6).

A region is {z : ||(z - center) / axes||_p <= 1} with axes = gap * theta (> 0 per dimension), closed:
an axis-aligned ellipsoid for norm "l2", a generalized cross-polytope for norm "l1". The functions
below compare one region (center, axes) of shape (dim,) with M stored regions (centers, axes_other)
of shape (M, dim) at once, in float64, without a Python loop over regions or dimensions. They trust
their inputs (axes > 0, matching shapes); `Region` validates at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..errors import InputError, InvalidParameterError, UnknownNameError

__all__ = [
    "NORMS",
    "Region",
    "check_norm",
    "inside",
    "intersects",
    "scaled_distance",
    "largest_disjoint_scale",
    "largest_inner_gap",
]

NORMS = ("l2", "l1")

_K_STEPS = 200  # at most this many safeguarded Newton steps on the log-odds of t (l2 K(t) test)
_NEWTON_STEPS = 200  # at most this many safeguarded Newton steps on the l2 nearest-point multiplier
_MARGINS = (1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7)  # relative round-downs tried by scale-downs


def check_norm(norm: str) -> str:
    """The norm's name, or UnknownNameError listing the known ones."""
    if norm not in NORMS:
        raise UnknownNameError(
            f"norm={norm!r} is not known; use 'l2' (gaussian noise) or 'l1' (uniform noise)"
        )
    return norm


@dataclass(frozen=True, eq=False)
class Region:
    """The certified region {z : ||(z - center) / (gap * theta)||_p <= 1} of one input.

    center and theta are flattened to float64 vectors of length dim (read-only); theta > 0 is the
    noise scale (standard deviation for l2, half-width for l1), gap >= 0 in theta units. gap = 0 is
    the single point {center}. Arrays make equality ambiguous, so regions compare by identity.
    """

    center: np.ndarray
    theta: np.ndarray
    gap: float
    norm: str

    def __post_init__(self) -> None:
        check_norm(self.norm)
        center = np.array(self.center, dtype=np.float64).reshape(-1)
        theta = np.array(self.theta, dtype=np.float64).reshape(-1)
        if theta.size == 1 and center.size != 1:
            theta = np.full(center.size, theta[0])
        if theta.shape != center.shape or center.size == 0:
            raise InputError(
                f"theta has {theta.size} entries but center has {center.size}; give one per dimension"
            )
        if not (np.isfinite(center).all() and np.isfinite(theta).all() and (theta > 0).all()):
            raise InvalidParameterError("center must be finite and theta finite and > 0, e.g. theta=0.25")
        if not (np.isfinite(self.gap) and self.gap >= 0):
            raise InvalidParameterError(f"gap={self.gap!r} must be finite and >= 0 (0 for a single point)")
        center.setflags(write=False)
        theta.setflags(write=False)
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "gap", float(self.gap))

    @property
    def dim(self) -> int:
        return self.center.size

    @property
    def axes(self) -> np.ndarray:
        """gap * theta, the semi-axes (l2) or vertex distances (l1), shape (dim,)."""
        return self.gap * self.theta

    @property
    def radius(self) -> float:
        """min(theta) * gap: the largest isotropic l_p ball inside the region."""
        return float(self.theta.min() * self.gap)

    @property
    def proxy_radius(self) -> float:
        """gap * exp(mean(log theta)): the radius of the l_p ball of equal volume (no underflow)."""
        return float(self.gap * np.exp(np.mean(np.log(self.theta))))

    def contains(self, points) -> np.ndarray:
        """Which of the points (k, dim) (or one point (dim,)) lie in the closed region: bool (k,)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, self.dim)
        if self.gap == 0:
            return (pts == self.center).all(axis=1)
        q = (pts - self.center) / self.axes
        return _gauge(q, self.norm) <= 1.0

    def intersects(self, other: Region) -> bool:
        """Whether the two closed regions share a point (exact test of spec section 6)."""
        if other.norm != self.norm or other.dim != self.dim:
            raise InputError(
                f"cannot compare an {self.norm} region in {self.dim} dims with an "
                f"{other.norm} region in {other.dim} dims"
            )
        if self.gap == 0:
            return bool(other.contains(self.center)[0])
        if other.gap == 0:
            return bool(self.contains(other.center)[0])
        return bool(intersects(self.center, self.axes, other.center[None], other.axes[None], self.norm)[0])


def _gauge(q: np.ndarray, norm: str) -> np.ndarray:
    """Per row: sum q^2 (l2, the squared norm) or sum |q| (l1); <= 1 means inside the unit region."""
    return np.einsum("ij,ij->i", q, q) if norm == "l2" else np.abs(q).sum(axis=1)


def inside(point: np.ndarray, centers: np.ndarray, axes: np.ndarray, norm: str) -> np.ndarray:
    """Whether point (dim,) lies in each of the M closed regions (centers, axes) (M, dim): bool (M,)."""
    return _gauge((point - centers) / axes, norm) <= 1.0


def intersects(center, axes, centers, axes_other, norm: str) -> np.ndarray:
    """Exact test: does the region (center, axes) meet each of the M regions? bool (M,).

    l2: the ellipsoids meet iff max_{t in (0,1)} t(1-t) sum_i d_i^2 / (t b_i^2 + (1-t) a_i^2) <= 1,
    i.e. min K(t) >= 0 for K of Gilitschenski & Hanebeck with squared A_i = 1/a_i^2, B_i = 1/b_i^2
    (a = axes, b = axes_other, d = centers - center); the maximised function is concave in t.
    l1: they meet iff the LP dual max_{mu >= 0} sum_i |d_i| min(1/a_i, mu/b_i) - mu <= 1.
    Touching regions meet (closed sets).
    """
    d = centers - center
    if norm == "l2":
        return _k_test_max(d * d, axes * axes, axes_other * axes_other) <= 1.0
    return _l1_depth(np.abs(d), axes, axes_other) <= 1.0


def _k_test_max(d2: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """max over t in (0,1) of f(t) = t(1-t) sum d2 / (t b2 + (1-t) a2) per row (all terms concave in t).

    t = expit(u) is parameterised by its log-odds u in [-60, 60], so maximisers near 0 or 1 keep their
    relative precision. Newton steps on g(u) = f(t(u)) are safeguarded by the bracket that the sign of
    g' = f' t (1-t) maintains around the maximiser (bisection when a step leaves it or g'' >= 0).
    """
    M = d2.shape[0]
    lo, hi, u = np.full(M, -60.0), np.full(M, 60.0), np.zeros(M)
    diff = b2 - a2
    for _ in range(_K_STEPS):
        t, s = expit(u), expit(-u)
        den = t[:, None] * b2 + s[:, None] * a2
        w, r = d2 / den, diff / den
        S0, S1, S2 = w.sum(axis=1), -(w * r).sum(axis=1), 2.0 * (w * r * r).sum(axis=1)
        ts = t * s
        f1 = (s - t) * S0 + ts * S1  # df/dt
        f2 = -2.0 * S0 + 2.0 * (s - t) * S1 + ts * S2  # d2f/dt2
        g1, g2 = f1 * ts, f2 * ts * ts + f1 * ts * (s - t)  # dg/du, d2g/du2
        lo, hi = np.where(g1 >= 0, u, lo), np.where(g1 <= 0, u, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = u - g1 / g2
        ok = np.isfinite(step) & (g2 < 0) & (step > lo) & (step < hi)
        new = np.where(ok, step, 0.5 * (lo + hi))
        done = np.abs(new - u) <= 1e-12 * (1.0 + np.abs(u))
        u = new
        if done.all():
            break
    t, s = expit(u), expit(-u)
    return t * s * (d2 / (t[:, None] * b2 + s[:, None] * a2)).sum(axis=1)


def _l1_depth(dabs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min over z in each cross-polytope (center + d, b) of sum |z - center| / a, exactly, per row.

    It equals max_{mu >= 0} phi(mu), phi(mu) = sum_i |d_i| min(1/a_i, mu/b_i) - mu (LP duality):
    concave, piecewise linear, with breakpoints mu = b_i / a_i, so it is the largest phi at 0 and at
    the sorted breakpoints. At the k-th breakpoint the terms with smaller breakpoints contribute
    |d_i| / a_i and the others mu |d_i| / b_i. O(dim log dim) per row.
    """
    ratio = b / a
    order = np.argsort(ratio, axis=1)
    mu = np.take_along_axis(ratio, order, axis=1)
    below = np.cumsum(np.take_along_axis(dabs / a, order, axis=1), axis=1)
    tail = np.take_along_axis(dabs / b, order, axis=1)
    above = np.zeros_like(tail)
    above[:, :-1] = np.cumsum(tail[:, :0:-1], axis=1)[:, ::-1]  # sum over later breakpoints
    return np.maximum(0.0, (below + mu * (above - 1.0)).max(axis=1))


def _l2_depth(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min over z in each ellipsoid (center + d, b) of ||(z - center) / a||_2, per row.

    Nearest point z(mu) = center + mu d a^2 / (b^2 + mu a^2); mu > 0 solves ||p(mu)|| = 1 with
    p = c / (lam + mu), c = d b / a^2, lam = b^2 / a^2 (a secular equation, as for trust regions).
    Newton on 1/||p|| - 1 (increasing in mu), safeguarded by the bracket
    [||c|| - max lam, ||c|| - min lam]; the distance is then mu ||p a / b||, free of cancellation.
    """
    lam = (b / a) ** 2
    c = d * b / (a * a)
    cnorm = np.sqrt(np.einsum("ij,ij->i", c, c))
    outside = np.einsum("ij,ij->i", d / b, d / b) > 1.0
    lo = np.maximum(0.0, cnorm - lam.max(axis=1))
    hi = np.maximum(lo, cnorm - lam.min(axis=1))
    mu = 0.5 * (lo + hi)
    for _ in range(_NEWTON_STEPS):
        p = c / (lam + mu[:, None])
        pn = np.sqrt(np.einsum("ij,ij->i", p, p))
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = 1.0 / pn - 1.0
            dphi = (p * p / (lam + mu[:, None])).sum(axis=1) / pn**3
            step = mu - phi / dphi
        lo = np.where(phi < 0, mu, lo)
        hi = np.where(phi > 0, mu, hi)
        ok = np.isfinite(step) & (step > lo) & (step < hi)
        new = np.where(ok, step, 0.5 * (lo + hi))
        done = ~outside | (np.abs(new - mu) <= 1e-15 * mu)
        mu = new
        if done.all():
            break
    p = c / (lam + mu[:, None])
    dist = mu * np.sqrt(np.einsum("ij,ij->i", p * a / b, p * a / b))
    return np.where(outside, dist, 0.0)


def scaled_distance(center, axes, centers, axes_other, norm: str) -> np.ndarray:
    """min over z in each of the M regions of ||(z - center) / axes||_p: shape (M,).

    The region (center, t * axes) meets region j iff t >= this value (0 when center is inside j).
    """
    d = centers - center
    if norm == "l2":
        return _l2_depth(d, axes, axes_other)
    return _l1_depth(np.abs(d), axes, axes_other)


def largest_disjoint_scale(center, axes, centers, axes_other, norm: str) -> float:
    """Largest t in [0, 1] with the region (center, t * axes) disjoint from all M regions (same shape).

    1.0 when it is already disjoint, 0.0 when center lies in one of them. Otherwise t sits just below
    the touching scale min_j scaled_distance (rounded down by at most 1e-7 relative, usually 1e-13)
    and is checked with the exact `intersects`, so t never errs on the large side.
    """
    if centers.shape[0] == 0:
        return 1.0
    if inside(center, centers, axes_other, norm).any():
        return 0.0
    if not intersects(center, axes, centers, axes_other, norm).any():
        return 1.0
    touch = min(1.0, float(scaled_distance(center, axes, centers, axes_other, norm).min()))
    for margin in _MARGINS:
        t = touch * (1.0 - margin)
        if not intersects(center, t * axes, centers, axes_other, norm).any():
            return t
    lo, hi = 0.0, touch  # the exact test disagrees with the distance: bisect on the test itself
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if intersects(center, mid * axes, centers, axes_other, norm).any():
            hi = mid
        else:
            lo = mid
    return lo


def _inner_gaps(center, theta, centers, axes, norm: str) -> np.ndarray:
    """Per region j containing center: a gap g with {||(z - center) / (g theta)||_p <= 1} inside j.

    l1 (exact): the vertices center +- g theta_k e_k are the extreme points, so g = (1 - s) / max_k
    theta_k / b_k with s = sum |center - c_j| / b. l2 (sound, conservative, by the triangle inequality):
    g = (1 - sqrt(s)) / max_k theta_k / b_k with s = sum ((center - c_j) / b)^2. Rounded down by a
    relative 1e-12 + 8 dim eps so that the float containment test still holds; never negative.
    """
    q = (center - centers) / axes
    s = np.abs(q).sum(axis=1) if norm == "l1" else np.sqrt(np.einsum("ij,ij->i", q, q))
    stretch = (theta / axes).max(axis=1)
    shrink = 1.0 - 1e-12 - 8.0 * center.size * np.finfo(np.float64).eps
    return np.maximum(0.0, (1.0 - s) / stretch * shrink)


def largest_inner_gap(center, theta, region_j: Region) -> float:
    """Largest gap g (exact for l1, sound for l2) with {||(z - center)/(g theta)||_p <= 1} inside region_j.

    center (dim,) must lie inside region_j (else 0.0); theta (dim,) > 0 is the new input's scale.
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1)
    theta = np.broadcast_to(np.asarray(theta, dtype=np.float64).reshape(-1), center.shape)
    if region_j.gap == 0:
        return 0.0
    return float(_inner_gaps(center, theta, region_j.center[None], region_j.axes[None], region_j.norm)[0])
