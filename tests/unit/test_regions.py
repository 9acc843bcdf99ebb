"""Geometry of certified regions vs independent references: linprog (l1) and a dual nearest-point solver (l2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import linprog, minimize_scalar

from anisocert.core.regions import (
    Region,
    inside,
    intersects,
    largest_disjoint_scale,
    largest_inner_gap,
    scaled_distance,
)
from anisocert.errors import InputError, InvalidParameterError, UnknownNameError

NORMS = ("l2", "l1")


# -- references, written independently of anisocert.core.regions ----------------------------------------------


def ref_l1_distance(a, alpha, b, beta) -> float:
    """min over z with sum |z - b| / beta <= 1 of sum |z - a| / alpha: an LP in (z, s >= |z - a|, r >= |z - b|)."""
    n = a.size
    eye, zero = np.eye(n), np.zeros((n, n))
    A_ub = np.vstack(
        [
            np.hstack([eye, -eye, zero]),
            np.hstack([-eye, -eye, zero]),
            np.hstack([eye, zero, -eye]),
            np.hstack([-eye, zero, -eye]),
            np.concatenate([np.zeros(2 * n), 1.0 / beta])[None],
        ]
    )
    b_ub = np.concatenate([a, -a, b, -b, [1.0]])
    cost = np.concatenate([np.zeros(n), 1.0 / alpha, np.zeros(n)])
    bounds = [(None, None)] * n + [(0, None)] * (2 * n)
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs-ds")
    assert res.status == 0, res.message
    return float(res.fun)


def ref_l2_distance(a, alpha, b, beta) -> float:
    """min over z with ||(z - b) / beta|| <= 1 of ||(z - a) / alpha||, from the Lagrangian dual:
    v^2 = max_{mu >= 0} sum d^2 mu / (beta^2 + mu alpha^2) - mu, a concave function of one variable."""
    d2 = (b - a) ** 2
    if (d2 / beta**2).sum() <= 1.0:
        return 0.0
    top = np.sqrt((d2 * beta**2 / alpha**4).sum())

    def neg_dual(mu):
        return -((d2 * mu / (beta**2 + mu * alpha**2)).sum() - mu)

    res = minimize_scalar(neg_dual, bounds=(0.0, top), method="bounded", options={"xatol": 1e-14 * top})
    return float(np.sqrt(max(0.0, -res.fun)))


def ref_distance(a, alpha, b, beta, norm) -> float:
    return ref_l2_distance(a, alpha, b, beta) if norm == "l2" else ref_l1_distance(a, alpha, b, beta)


def random_region(rng, n, spread=1.0):
    return rng.normal(size=n) * spread, np.exp(rng.uniform(np.log(0.2), np.log(2.0), n))


def gauge_loop(point, center, axes, norm) -> float:
    """||(point - center) / axes||_p by a plain Python loop."""
    total = 0.0
    for p, c, w in zip(point.tolist(), center.tolist(), axes.tolist()):
        total += ((p - c) / w) ** 2 if norm == "l2" else abs(p - c) / w
    return total**0.5 if norm == "l2" else total


def unit_direction(rng, n, norm):
    u = rng.normal(size=n)
    return u / np.linalg.norm(u, ord=2 if norm == "l2" else 1)


# -- containment ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_inside_agrees_with_gauge_on_boundary_points(norm):
    rng = np.random.default_rng(1)
    for k in range(200):
        n = 1 + k % 20
        centers = rng.normal(size=(4, n))
        axes = np.exp(rng.uniform(-2, 1, (4, n)))
        scale = rng.choice([1 - 1e-6, 1 + 1e-6, 0.5, 2.0])
        point = centers[0] + scale * axes[0] * unit_direction(rng, n, norm)
        got = inside(point, centers, axes, norm)
        want = np.array([gauge_loop(point, centers[j], axes[j], norm) <= 1 for j in range(4)])
        np.testing.assert_array_equal(got, want)
        assert got[0] == (scale < 1)
        region = Region(centers[0], axes[0], 1.0, norm)
        assert region.contains(point[None])[0] == got[0]


# -- intersection -----------------------------------------------------------------------------------------


def pair_at_distance(rng, n, norm, target):
    """A random pair whose reference distance (gauge of region a at region b's nearest point) is target."""
    while True:
        a, alpha = random_region(rng, n)
        b, beta = random_region(rng, n)
        v = ref_distance(a, alpha, b, beta, norm)
        if v > 1e-3:
            return a, alpha * v / target, b, beta


@pytest.mark.parametrize("norm", NORMS)
def test_intersects_agrees_with_reference(norm):
    rng = np.random.default_rng(2)
    seen = {True: 0, False: 0}
    for k in range(200):
        n = 1 + k % 20
        target = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
        a, alpha, b, beta = pair_at_distance(rng, n, norm, target)
        got = intersects(a, alpha, b[None], beta[None], norm)[0]
        assert got == (target <= 1.0), (n, target)
        assert intersects(b, beta, a[None], alpha[None], norm)[0] == got  # symmetric
        seen[bool(got)] += 1
    assert min(seen.values()) > 40


@pytest.mark.parametrize("norm", NORMS)
def test_intersects_nested_and_far_apart(norm):
    rng = np.random.default_rng(3)
    for k in range(100):
        n = 1 + k % 20
        a, alpha = random_region(rng, n)
        # nested: a small region around a point deep inside the big one, in both argument orders
        b = a + 0.3 * alpha * unit_direction(rng, n, norm)
        beta = 0.01 * alpha * rng.uniform(0.5, 1.0, n)
        assert intersects(a, alpha, b[None], beta[None], norm)[0]
        assert intersects(b, beta, a[None], alpha[None], norm)[0]
        assert ref_distance(b, beta, a, alpha, norm) == 0.0
        # far apart: enclosing balls disjoint
        far = a + (alpha.max() + beta.max()) * 1.01 * unit_direction(rng, n, norm)
        assert not intersects(a, alpha, far[None], beta[None], norm)[0]


@pytest.mark.parametrize("norm", NORMS)
def test_touching_pairs_perturbed_by_one_millionth(norm):
    rng = np.random.default_rng(4)
    for k in range(150):
        n = 1 + k % 20
        a, alpha, b, beta = pair_at_distance(rng, n, norm, 1.0)  # exactly touching, per the reference
        assert intersects(a, alpha * (1 + 1e-6), b[None], beta[None], norm)[0], (n, k)
        assert not intersects(a, alpha * (1 - 1e-6), b[None], beta[None], norm)[0], (n, k)
        # scaling the other region instead must agree
        assert intersects(a, alpha, b[None], beta[None] * (1 + 1e-6), norm)[0]
        assert not intersects(a, alpha * (1 - 1e-6), b[None], beta[None] * (1 - 1e-6), norm)[0]


def test_l2_test_uses_squared_matrices():
    """The unsquared-matrix test of a derived script (spec section 9) calls this disjoint pair intersecting."""
    a, alpha = np.zeros(2), np.array([0.33, 0.48])
    b, beta = np.array([-0.67, 0.35]), np.array([0.15, 0.2])
    assert ref_l2_distance(a, alpha, b, beta) > 1.0  # disjoint

    def unsquared_min_k(t):
        A, B = 1 / alpha, 1 / beta
        return 1 - ((b - a) ** 2 * t * (1 - t) * A * B / (t * A + (1 - t) * B)).sum()

    assert min(unsquared_min_k(t) for t in np.linspace(0.001, 0.999, 999)) >= 0  # wrongly "intersect"
    assert not intersects(a, alpha, b[None], beta[None], "l2")[0]


@pytest.mark.parametrize("norm", NORMS)
def test_scaled_distance_matches_reference(norm):
    rng = np.random.default_rng(5)
    for k in range(100):
        n = 1 + k % 20
        a, alpha = random_region(rng, n)
        centers = np.stack([random_region(rng, n, spread=1.5)[0] for _ in range(3)])
        axes = np.stack([random_region(rng, n)[1] for _ in range(3)])
        got = scaled_distance(a, alpha, centers, axes, norm)
        want = [ref_distance(a, alpha, centers[j], axes[j], norm) for j in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


# -- scale-down -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_largest_disjoint_scale_is_disjoint_and_maximal(norm):
    rng = np.random.default_rng(6)
    shrunk = 0
    for k in range(120):
        n = 1 + k % 20
        a, alpha = random_region(rng, n)
        M = 1 + k % 5
        axes = np.exp(rng.uniform(np.log(0.1), np.log(1.0), (M, n)))
        # a lies outside region j, at gauge 0.9 .. 3 from its center (0.9: inside, then t = 0)
        reach = rng.uniform(0.9, 3.0, (M, 1))
        centers = a - reach * axes * np.stack([unit_direction(rng, n, norm) for _ in range(M)])
        t = largest_disjoint_scale(a, alpha, centers, axes, norm)
        if inside(a, centers, axes, norm).any():
            assert t == 0.0
            continue
        assert 0.0 < t <= 1.0
        assert not intersects(a, t * alpha, centers, axes, norm).any()
        touch = min(ref_distance(a, alpha, centers[j], axes[j], norm) for j in range(M))
        if t < 1.0:
            shrunk += 1
            assert intersects(a, t * (1 + 1e-6) * alpha, centers, axes, norm).any()
            assert t <= touch * (1 + 1e-10)  # never too large
            assert t >= touch * (1 - 1e-7)
        else:
            assert touch >= 1.0 - 1e-9 and not intersects(a, alpha, centers, axes, norm).any()
    assert shrunk > 50


@pytest.mark.parametrize("norm", NORMS)
def test_largest_disjoint_scale_edge_cases(norm):
    a, alpha = np.zeros(3), np.ones(3)
    far = np.array([[10.0, 0, 0]])
    assert largest_disjoint_scale(a, alpha, far, np.ones((1, 3)), norm) == 1.0
    assert largest_disjoint_scale(a, alpha, np.array([[0.1, 0, 0]]), np.ones((1, 3)), norm) == 0.0
    assert largest_disjoint_scale(a, alpha, np.empty((0, 3)), np.empty((0, 3)), norm) == 1.0
    # 1-D closed form: unit regions at distance 1.5 touch at scale 0.5
    t = largest_disjoint_scale(np.zeros(1), np.ones(1), np.array([[1.5]]), np.ones((1, 1)), norm)
    assert 0.5 * (1 - 1e-9) < t < 0.5


# -- inner gap (the adopt option) -------------------------------------------------------------------------


def test_largest_inner_gap_l1_is_exact():
    rng = np.random.default_rng(7)
    for k in range(100):
        n = 1 + k % 20
        region = Region(*random_region(rng, n), 1.3, "l1")
        x = region.center + rng.uniform(0, 0.9) * region.axes * unit_direction(rng, n, "l1")
        theta = np.exp(rng.uniform(-1, 1, n))
        g = largest_inner_gap(x, theta, region)
        vertices = x + np.concatenate([np.diag(g * theta), -np.diag(g * theta)])
        assert region.contains(vertices).all()
        bigger = x + np.concatenate([np.diag(g * (1 + 1e-6) * theta), -np.diag(g * (1 + 1e-6) * theta)])
        assert not region.contains(bigger).all()


def test_largest_inner_gap_l2_is_sound():
    rng = np.random.default_rng(8)
    for k in range(60):
        n = 1 + k % 20
        region = Region(*random_region(rng, n), 2.0, "l2")
        x = region.center + rng.uniform(0, 0.9) * region.axes * unit_direction(rng, n, "l2")
        theta = np.exp(rng.uniform(-1, 1, n))
        g = largest_inner_gap(x, theta, region)
        assert g > 0
        u = rng.normal(size=(2000, n))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        tips = np.concatenate([np.eye(n), -np.eye(n), u])
        assert region.contains(x + g * theta * tips).all()
    assert largest_inner_gap(np.full(3, 5.0), np.ones(3), Region(np.zeros(3), np.ones(3), 1.0, "l2")) == 0.0


# -- Region -----------------------------------------------------------------------------------------------


def test_region_scalars_and_methods():
    region = Region(np.zeros(3), np.array([0.5, 1.0, 2.0]), 2.0, "l2")
    np.testing.assert_allclose(region.axes, [1.0, 2.0, 4.0])
    assert region.radius == 1.0
    assert region.proxy_radius == pytest.approx(2.0)  # geometric mean of theta is 1
    assert region.contains(np.array([[1.0, 0, 0], [0, 0, 4.0], [1.0, 2.0, 0]])).tolist() == [
        True,
        True,
        False,
    ]
    # proxy radius through logs: prod(0.01 ** 150528) underflows
    big = Region(np.zeros(150528), np.full(150528, 0.01), 3.0, "l1")
    assert big.proxy_radius == pytest.approx(0.03) and big.radius == pytest.approx(0.03)


def test_region_intersects_and_points():
    a = Region([0.0, 0.0], [1.0, 1.0], 1.0, "l1")
    assert a.intersects(Region([1.9, 0.0], [1.0, 1.0], 1.0, "l1"))
    assert not a.intersects(Region([1.5, 1.5], [1.0, 1.0], 1.0, "l1"))
    point = Region([0.5, 0.4], [1.0, 1.0], 0.0, "l1")
    assert a.intersects(point) and point.intersects(a)
    assert not point.intersects(Region([0.5, 0.5], [1.0, 1.0], 0.0, "l1"))
    assert point.contains([0.5, 0.4])[0]
    with pytest.raises(InputError):
        a.intersects(Region([0.0, 0.0], [1.0, 1.0], 1.0, "l2"))


def test_region_is_frozen_and_validated():
    region = Region([0.0, 1.0], 0.5, 1.0, "l2")
    np.testing.assert_array_equal(region.theta, [0.5, 0.5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        region.gap = 2.0
    with pytest.raises(ValueError):
        region.center[0] = 3.0
    with pytest.raises(UnknownNameError, match="norm='linf'"):
        Region([0.0], [1.0], 1.0, "linf")
    with pytest.raises(InvalidParameterError, match="theta"):
        Region([0.0, 0.0], [1.0, 0.0], 1.0, "l2")
    with pytest.raises(InvalidParameterError, match="gap"):
        Region([0.0], [1.0], -1.0, "l2")
    with pytest.raises(InputError, match="theta has 3 entries"):
        Region([0.0, 0.0], [1.0, 1.0, 1.0], 1.0, "l2")
