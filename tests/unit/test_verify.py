"""verify_regions: closed-form depths, analytically touching pairs (+-1e-6), and agreement with regions.py."""

from __future__ import annotations

import numpy as np
import pytest

from anisocert.core.regions import intersects, scaled_distance
from anisocert.core.verify import VerifyReport, verify_regions
from anisocert.errors import InputError, InvalidParameterError, UnknownNameError

NORMS = ("l2", "l1")


def unit_direction(rng, n, norm):
    u = rng.normal(size=n)
    return u / np.linalg.norm(u, ord=2 if norm == "l2" else 1)


def check_pair(a, alpha, b, beta, norm, gap=1.0):
    """verify_regions on the two regions (a, gap * alpha), (b, gap * beta) of classes 0 and 1."""
    return verify_regions(np.stack([a, b]), np.stack([alpha, beta]), [gap, gap], [0, 1], norm)


@pytest.mark.parametrize("norm", NORMS)
def test_depth_of_isotropic_regions_has_closed_form(norm):
    rng = np.random.default_rng(20)
    for k in range(40):
        n = 1 + k % 12
        r1, r2, dist = rng.uniform(0.5, 2.0, 3) * [1, 1, 2]
        b = dist * unit_direction(rng, n, norm)
        report = check_pair(np.zeros(n), np.full(n, r1), b, np.full(n, r2), norm)
        want = max(0.0, (dist - r1) / r2)
        if dist <= r1 + r2:  # the enclosing balls meet, so the pair reaches the solver
            assert report.depths[(0, 1)] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert report.ok == (dist > r1 + r2)


@pytest.mark.parametrize("norm", NORMS)
def test_touching_pairs_are_reported_only_beyond_the_tolerance(norm):
    """Exactly touching pairs, built analytically; scaled by 1 +- 1e-6 they overlap / separate."""
    rng = np.random.default_rng(21)
    for k in range(60):
        n = 1 + k % 15
        a, alpha = rng.normal(size=n), np.exp(rng.uniform(-1, 1, n))
        if norm == "l2" or k % 2:
            beta = np.exp(rng.uniform(-1, 1, n)) if norm == "l2" else alpha * rng.uniform(0.3, 3.0)
            u = unit_direction(rng, n, norm)
            if norm == "l2":  # tangent ellipsoids: opposite normals at the boundary point z0
                z0 = a + alpha * u
                normal = u / alpha
                b = z0 + beta**2 * normal / np.linalg.norm(beta * normal)
            else:  # homothetic cross-polytopes touch when ||(b - a) / alpha||_1 = 1 + ratio
                b = a + (1 + beta[0] / alpha[0]) * alpha * u
        else:  # l1 vertex against vertex along one axis
            beta = np.exp(rng.uniform(-1, 1, n))
            axis = k % n
            b = a.copy()
            b[axis] += alpha[axis] + beta[axis]
        touching = check_pair(a, alpha, b, beta, norm)
        assert touching.ok and touching.pairs_checked == 1
        assert touching.depths[(0, 1)] == pytest.approx(1.0, abs=1e-9)
        assert check_pair(a, alpha, b, beta, norm, gap=1 + 1e-6).conflicts == [(0, 1)]
        assert check_pair(a, alpha, b, beta, norm, gap=1 - 1e-6).ok


@pytest.mark.parametrize("norm", NORMS)
def test_agrees_with_the_exact_tests_of_regions(norm):
    rng = np.random.default_rng(22)
    compared = conflicts = 0
    for k in range(8):
        n, M = 1 + 3 * k, 25
        centers = rng.normal(size=(M, n)) * (1.0 if norm == "l2" else 1.0 / np.sqrt(n))
        thetas = np.exp(rng.uniform(-1.5, 0, (M, n)))
        gaps = rng.uniform(0.5, 2.0, M)
        preds = rng.integers(-1, 3, M)
        report = verify_regions(centers, thetas, gaps, preds, norm)
        axes = gaps[:, None] * thetas
        for i in range(M - 1):
            later = np.arange(i + 1, M)
            later = later[(preds[later] != preds[i]) & (preds[later] != -1) & (preds[i] != -1)]
            v = scaled_distance(centers[i], axes[i], centers[later], axes[later], norm)
            meets = intersects(centers[i], axes[i], centers[later], axes[later], norm)
            for j, vj, want in zip(later, v, meets):
                if abs(vj - 1) > 1e-6:
                    assert ((i, j) in report.conflicts) == want, (i, j, vj)
                    compared += 1
                    conflicts += want
    assert compared > 500 and conflicts > 50


@pytest.mark.parametrize("norm", NORMS)
def test_nested_regions_conflict(norm):
    centers = np.array([[0.0, 0.0, 0.0], [0.1, -0.1, 0.0]])
    thetas = np.array([[1.0, 2.0, 0.5], [0.01, 0.02, 0.01]])
    for order in ([0, 1], [1, 0]):
        report = verify_regions(centers[order], thetas[order], [1.0, 1.0], [3, 4], norm)
        assert report.conflicts == [(0, 1)]
        # depth: the gauge of the later region at the nearest point of the earlier one
        depth = report.depths[(0, 1)]
        assert depth == 0.0 if order == [0, 1] else 0.05 < depth < 0.15


def test_same_class_abstentions_and_far_pairs_are_not_checked():
    centers = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [50.0, 0.0]])
    report = verify_regions(centers, np.ones((4, 2)), [1.0, 1.0, 1.0, 1.0], [2, 2, -1, 3], "l2")
    assert report == VerifyReport([], 0, 2, 1e-9, {})  # (0, 3), (1, 3): far apart, skipped by the pre-filter
    report = verify_regions(centers, np.ones((4, 2)), [1.0, 1.0, 1.0, 1.0], [2, 5, -1, 3], "l1")
    assert report.conflicts == [(0, 1)] and report.pairs_checked == 1 and report.pairs_foreign == 3


@pytest.mark.parametrize("norm", NORMS)
def test_points_of_gap_zero(norm):
    centers = np.array([[0.0, 0.0], [0.5, 0.2], [3.0, 0.0], [0.5, 0.2]])
    report = verify_regions(centers, np.ones(4), [1.0, 0.0, 0.0, 0.0], [0, 1, 1, 2], norm)
    # point 1 lies in region 0; point 2 does not; points 1 and 3 coincide with different classes
    assert report.conflicts == [(0, 1), (0, 3), (1, 3)]


def test_errors_name_the_value():
    with pytest.raises(UnknownNameError, match="norm='linf'"):
        verify_regions(np.zeros((2, 2)), np.ones((2, 2)), [1, 1], [0, 1], "linf")
    with pytest.raises(InputError, match="same M regions"):
        verify_regions(np.zeros((2, 2)), np.ones((3, 2)), [1, 1], [0, 1], "l2")
    with pytest.raises(InputError, match="shape"):
        verify_regions(np.zeros(2), np.ones(2), [1, 1], [0, 1], "l2")
    with pytest.raises(InvalidParameterError, match="thetas > 0"):
        verify_regions(np.zeros((2, 2)), np.zeros((2, 2)), [1, 1], [0, 1], "l2")
    with pytest.raises(InvalidParameterError, match="gaps must be >= 0"):
        verify_regions(np.zeros((2, 2)), np.ones((2, 2)), [1, -1], [0, 1], "l2")
    with pytest.raises(InvalidParameterError, match="tol=2"):
        verify_regions(np.zeros((2, 2)), np.ones((2, 2)), [1, 1], [0, 1], "l2", tol=2)
