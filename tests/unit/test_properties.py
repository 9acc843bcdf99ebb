"""Property-based tests (hypothesis) of the geometry and the metrics, in 1 to 50 dimensions.

Every property is checked against a computation written here, independently of anisocert: scipy's linprog
for l1 distances, a one-dimensional Lagrangian dual solved by bisection for l2 distances, sampled common
points (a found point proves an intersection, so sampling is only used in that direction), the explicit
vertices of cross-polytopes, and naive Python loops for the metrics and region scalars.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from anisocert.core.memory import ABSTAIN, CertificateMemory
from anisocert.core.metrics import average_certified_radius, certified_accuracy
from anisocert.core.regions import (
    Region,
    inside,
    intersects,
    largest_disjoint_scale,
    largest_inner_gap,
    scaled_distance,
)

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
NORMS = st.sampled_from(["l2", "l1"])
TIE = 1e-7  # cases this close to touching are left out: the references are accurate to about 1e-9

# -- references -----------------------------------------------------------------------------------------


def gauge(points, center, axes, norm) -> np.ndarray:
    """||(p - center) / axes||_p for each row of points (k, dim)."""
    q = (np.atleast_2d(points) - center) / axes
    return np.sqrt((q * q).sum(axis=1)) if norm == "l2" else np.abs(q).sum(axis=1)


def l1_depth(a, alpha, b, beta) -> float:
    """min over z in the cross-polytope (b, beta) of sum |z - a| / alpha: an LP in z = b + p - q, p, q >= 0,
    sum (p + q) / beta <= 1, r >= |z - a| / alpha; minimise sum r."""
    dim = a.size
    eye, inv = np.eye(dim), np.diag(1.0 / alpha)
    A_ub = np.vstack(
        [
            np.hstack([inv, -inv, -eye]),  # (b + p - q - a) / alpha <= r
            np.hstack([-inv, inv, -eye]),
            np.concatenate([1.0 / beta, 1.0 / beta, np.zeros(dim)])[None],
        ]
    )
    b_ub = np.concatenate([(a - b) / alpha, (b - a) / alpha, [1.0]])
    cost = np.concatenate([np.zeros(2 * dim), np.ones(dim)])
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def l2_depth(a, alpha, b, beta) -> float:
    """min over z in the ellipsoid (b, beta) of ||(z - a) / alpha||_2.

    Its square is max_{lam >= 0} D(lam), D(lam) = sum d^2 lam / (beta^2 + lam alpha^2) - lam (d = b - a; the
    Lagrangian dual, exact by the S-lemma). D is concave; its derivative sum d^2 beta^2 / (beta^2 +
    lam alpha^2)^2 - 1 decreases, is <= 0 at lam = sqrt(sum d^2 beta^2 / alpha^4), and is bisected to its root.
    """
    d2, a2, b2 = (b - a) ** 2, alpha**2, beta**2
    if (d2 / b2).sum() <= 1.0:
        return 0.0
    lo, hi = 0.0, math.sqrt((d2 * b2 / a2**2).sum())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (d2 * b2 / (b2 + mid * a2) ** 2).sum() > 1.0:
            lo = mid
        else:
            hi = mid
    lam = 0.5 * (lo + hi)
    return math.sqrt(max(0.0, (d2 * lam / (b2 + lam * a2)).sum() - lam))


def depth(a, alpha, b, beta, norm) -> float:
    """The smallest scale t at which the region (a, t alpha) meets the region (b, beta)."""
    return l2_depth(a, alpha, b, beta) if norm == "l2" else l1_depth(a, alpha, b, beta)


# -- strategies -------------------------------------------------------------------------------------------


@st.composite
def regions(draw, dim: int):
    """(center, axes) with log-uniform axes in [0.02, 5]."""
    center = draw(arrays(np.float64, dim, elements=st.floats(-3, 3)))
    log_axes = draw(arrays(np.float64, dim, elements=st.floats(math.log(0.02), math.log(5))))
    return center, np.exp(log_axes)


@st.composite
def pairs(draw, norm: str):
    """Two regions in 1-50 dims; region a is rescaled so that their reference depth is a drawn target in
    [0.3, 2] or 1e-5 from touching (or stays 0 when b's center lies in a)."""
    dim = draw(st.integers(1, 50))
    a, alpha = draw(regions(dim))
    _, beta = draw(regions(dim))
    direction = draw(arrays(np.float64, dim, elements=st.floats(-1, 1)))
    assume(np.abs(direction).max() > 1e-3)
    direction /= np.sqrt(direction @ direction)
    b = a + direction * (alpha.max() + beta.max()) * draw(st.floats(0.0, 1.5))
    current = depth(a, alpha, b, beta, norm)
    if current > 0:
        target = draw(st.one_of(st.floats(0.3, 2.0), st.sampled_from([1 - 1e-5, 1 + 1e-5])))
        alpha = alpha * (current / target)  # the depth scales as 1 / (scale of alpha)
    return dim, a, alpha, b, beta


# -- containment ------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 50), NORMS, st.data())
def test_contains_and_inside_match_the_gauge(dim, norm, data):
    center, axes = data.draw(regions(dim))
    gap = data.draw(st.floats(0.01, 3.0))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    unit = rng.normal(size=(40, dim))
    unit /= (
        np.linalg.norm(unit, axis=1, keepdims=True)
        if norm == "l2"
        else np.abs(unit).sum(axis=1, keepdims=True)
    )
    # gauges: uniform in [0, 2], and 1e-6 inside and outside the boundary
    level = np.concatenate([rng.uniform(0.0, 2.0, 20), np.repeat([1 - 1e-6, 1 + 1e-6], 10)])[:, None]
    points = center + level * gap * axes * unit
    expected = np.array(
        [
            math.fsum(
                ((p - c) / (gap * t)) ** 2 if norm == "l2" else abs(p - c) / (gap * t)
                for p, c, t in zip(point, center, axes)
            )
            for point in points
        ]
    )
    keep = np.abs(expected - 1.0) > TIE
    region = Region(center, axes, gap, norm)
    assert np.array_equal(region.contains(points)[keep], (expected <= 1.0)[keep])
    # inside(): one point against many regions gives the same answers
    many = inside(center, points, np.broadcast_to(gap * axes, points.shape), norm)
    reverse = gauge(points, center, gap * axes, norm)  # the gauge is symmetric in the two points
    keep = np.abs(reverse - 1.0) > TIE
    assert np.array_equal(many[keep], (reverse <= 1.0)[keep])


# -- intersection -----------------------------------------------------------------------------------------


@SETTINGS
@given(NORMS, st.data())
def test_intersects_matches_the_reference(norm, data):
    _, a, alpha, b, beta = data.draw(pairs(norm))
    ref = depth(a, alpha, b, beta, norm)
    assume(abs(ref - 1.0) > TIE)
    event(f"{norm} meet: {ref <= 1.0}")
    assert bool(intersects(a, alpha, b[None], beta[None], norm)[0]) == (ref <= 1.0)
    assert bool(intersects(b, beta, a[None], alpha[None], norm)[0]) == (ref <= 1.0)  # symmetric


@SETTINGS
@given(NORMS, st.integers(0, 2**32 - 1), st.data())
def test_a_sampled_common_point_implies_intersects(norm, seed, data):
    dim, a, alpha, b, beta = data.draw(pairs(norm))
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, 201)[:, None]
    # points on the segment between the centers and uniformly in region a
    if norm == "l2":
        v = rng.normal(size=(2000, dim))
        v *= (rng.uniform(size=(2000, 1)) ** (1.0 / dim)) / np.linalg.norm(v, axis=1, keepdims=True)
    else:
        e = rng.exponential(size=(2000, dim + 1))
        v = e[:, :dim] / e.sum(axis=1, keepdims=True) * rng.choice([-1.0, 1.0], size=(2000, dim))
    points = np.vstack([a + t * (b - a), a + v * alpha])
    common = (gauge(points, a, alpha, norm) <= 1.0 - 1e-9) & (gauge(points, b, beta, norm) <= 1.0 - 1e-9)
    event(f"{norm} common point found: {common.any()}")
    if common.any():
        assert intersects(a, alpha, b[None], beta[None], norm)[0]


@SETTINGS
@given(NORMS, st.data())
def test_scaled_distance_matches_the_reference(norm, data):
    _, a, alpha, b, beta = data.draw(pairs(norm))
    got = float(scaled_distance(a, alpha, b[None], beta[None], norm)[0])
    ref = depth(a, alpha, b, beta, norm)
    assert abs(got - ref) <= 1e-6 * ref + 1e-9


# -- scale-down and inner regions -------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 50), NORMS, st.integers(1, 4), st.data())
def test_largest_disjoint_scale_is_just_below_the_nearest_foreign_region(dim, norm, count, data):
    x, axes = data.draw(regions(dim))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    others = [data.draw(regions(dim)) for _ in range(count)]
    centers = np.stack([x + rng.normal(size=dim) * axes.max() * rng.uniform(0.2, 2.0) for _ in others])
    axes_other = np.stack([o[1] for o in others])
    touch = min(depth(x, axes, c, ax, norm) for c, ax in zip(centers, axes_other))
    if touch > 0:  # rescale x's axes so that the nearest foreign region is at a drawn depth
        target = data.draw(st.one_of(st.floats(0.2, 1.5), st.sampled_from([1 - 1e-5, 1 + 1e-5])))
        axes, touch = axes * (touch / target), target
        touch = min(depth(x, axes, c, ax, norm) for c, ax in zip(centers, axes_other))
    t = largest_disjoint_scale(x, axes, centers, axes_other, norm)
    event(f"{norm} " + ("inside" if touch == 0 else "disjoint" if touch > 1 else "scaled down"))
    if touch == 0.0:
        assert t == 0.0  # x lies in a foreign region
    elif touch > 1.0 + TIE:
        assert t == 1.0
    else:
        assume(touch < 1.0 - TIE)
        assert touch * (1.0 - 1e-6) <= t <= touch * (1.0 + 1e-9)


@SETTINGS
@given(st.integers(1, 50), NORMS, st.data())
def test_largest_inner_gap_stays_inside(dim, norm, data):
    center_j, axes_j = data.draw(regions(dim))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction) if norm == "l2" else np.abs(direction).sum()
    x = center_j + direction * axes_j * data.draw(st.floats(0.0, 0.99))
    _, theta = data.draw(regions(dim))
    g = largest_inner_gap(x, theta, Region(center_j, axes_j, 1.0, norm))
    assert g >= 0.0
    if norm == "l1":
        # the 2 dim vertices x +- g theta_k e_k are the extreme points: all inside, and exact
        vertices = np.concatenate([x + np.diag(g * theta), x - np.diag(g * theta)])
        assert (gauge(vertices, center_j, axes_j, norm) <= 1.0).all()
        grown = np.concatenate([x + np.diag(g * theta * (1 + 1e-6)), x - np.diag(g * theta * (1 + 1e-6))])
        assert (gauge(grown, center_j, axes_j, norm) > 1.0).any()
    else:
        # sound: sampled boundary points of the inner ellipsoid and its axis tips stay inside
        v = rng.normal(size=(500, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        points = np.concatenate([x + g * theta * v, x + np.diag(g * theta), x - np.diag(g * theta)])
        assert (gauge(points, center_j, axes_j, norm) <= 1.0 + 1e-12).all()


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 50), NORMS, st.integers(0, 2**32 - 1))
def test_memory_keeps_foreign_regions_disjoint(dim, norm, seed):
    rng = np.random.default_rng(seed)
    memory = CertificateMemory(norm, dim)
    stored = []
    spread = rng.uniform(0.1, 1.5) / (math.sqrt(dim) if norm == "l2" else dim)  # l1 regions are thinner
    for _ in range(6):
        center = rng.normal(size=dim) * spread
        theta = np.exp(rng.uniform(math.log(0.05), math.log(1.0), dim))
        decision = memory.certify(center, theta, rng.uniform(0.5, 3.0), int(rng.integers(2)))
        if decision.prediction != ABSTAIN and decision.gap > 0:
            stored.append((center, decision.gap * theta, decision.prediction))
    event(f"{norm} memory changed {sum(memory.status_counts[s] for s in ('shrunk', 'abstain_inside'))} of 6")
    for i, (ci, ai, pi) in enumerate(stored):
        for cj, aj, pj in stored[i + 1 :]:
            if pi != pj:
                assert depth(ci, ai, cj, aj, norm) >= 1.0 - 1e-9


# -- scalars and metrics ----------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 50), NORMS, st.data())
def test_region_radius_and_proxy_radius(dim, norm, data):
    center, theta = data.draw(regions(dim))
    gap = data.draw(st.floats(0.0, 4.0))
    region = Region(center, theta, gap, norm)
    smallest = theta[0]
    for value in theta:
        smallest = min(smallest, value)
    assert region.radius == smallest * gap
    geometric = math.prod(float(v) for v in theta) ** (1.0 / dim)
    assert math.isclose(region.proxy_radius, gap * geometric, rel_tol=1e-12, abs_tol=1e-300)


RADII = st.one_of(st.sampled_from([0.0, 0.25, 0.4996, 0.5, 0.75, 1.0]), st.floats(0.0, 3.0))


@SETTINGS
@given(
    st.lists(st.tuples(RADII, st.booleans()), min_size=1, max_size=60),
    st.lists(RADII, min_size=1, max_size=10),
)
def test_metrics_match_naive_loops(records, grid):
    radius = [r for r, _ in records]
    correct = [c for _, c in records]
    expected = []
    for R in grid:
        count = 0
        for r, c in records:
            if c and r >= R:
                count += 1
        expected.append(count / len(records))
    assert certified_accuracy(radius, correct, grid).tolist() == expected
    acr = math.fsum(r for r, c in records if c) / len(records)
    assert math.isclose(average_certified_radius(radius, correct), acr, rel_tol=1e-12, abs_tol=1e-15)
