"""Selftest rows for the geometry memory relies on: exact region tests against independent solvers.

`regions.intersects`, `regions.inside`, `regions.largest_disjoint_scale` and `CertificateMemory` are
checked against the independent solver of `anisocert.core.verify` and, for l1, an LP of our own solved by
`scipy.optimize.linprog`, on random small cases and cases placed 1e-4 from touching. Every disagreement
counts (the bound is 0), except ties: a depth within TIE of 1 is too close to touching for a solver to
decide. Each check takes the run's plan (pairs, max_dim, memory_regions) and a numpy Generator, and
returns (name, errors, detail); the self-test turns that into a CheckResult with bound 0.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..core import regions
from ..core.memory import CertificateMemory
from ..core.verify import verify_regions

__all__ = ["TIE", "inside_errors", "intersects_errors", "memory_errors", "scale_down_errors"]

TIE = 1e-8  # |depth - 1| below this: too close to touching for a solver to decide, not counted


def _verify_depth(a, axes_a, b, axes_b, norm_name: str, gap_a: float = 1.0) -> float:
    """verify's overlap depth of region (a, gap_a * axes_a) with region (b, axes_b): < 1 iff they overlap.

    inf when verify's enclosing-ball pre-filter already separates them. gap_a = 0 makes region a a point.
    """
    report = verify_regions(
        np.stack([a, b]), np.stack([axes_a, axes_b]), np.array([gap_a, 1.0]), np.array([0, 1]), norm_name
    )
    return float(report.depths.get((0, 1), np.inf))


def _lp_depth(a, alpha, b, beta) -> float:
    """min over z with sum |z - a| / alpha <= 1 of sum |z - b| / beta, by linprog (HiGHS).

    Variables (z, s, t), s >= |z - a| / alpha and t >= |z - b| / beta coordinate-wise, sum s <= 1;
    minimise sum t. The regions meet iff the optimum is <= 1.
    """
    dim = a.size
    eye, zero = np.eye(dim), np.zeros((dim, dim))
    ia, ib = np.diag(1.0 / alpha), np.diag(1.0 / beta)
    A_ub = np.vstack(
        [
            np.hstack([ia, -eye, zero]),
            np.hstack([-ia, -eye, zero]),
            np.hstack([ib, zero, -eye]),
            np.hstack([-ib, zero, -eye]),
            np.concatenate([np.zeros(dim), np.ones(dim), np.zeros(dim)])[None],
        ]
    )
    b_ub = np.concatenate([a / alpha, -a / alpha, b / beta, -b / beta, [1.0]])
    cost = np.concatenate([np.zeros(2 * dim), np.ones(dim)])
    bounds = [(None, None)] * dim + [(0, None)] * (2 * dim)
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def _random_region(rng, center, spread: float) -> np.ndarray:
    """Axes of a random anisotropic region around `center`: log-normal shape, mean scale ~ spread."""
    axes = np.exp(rng.normal(0.0, 0.7, center.size))
    return axes * spread * rng.uniform(0.2, 1.2) / axes.mean()


def _random_pair(rng, max_dim: int):
    dim = int(rng.integers(1, max_dim + 1))
    a = rng.normal(size=dim)
    b = a + rng.normal(size=dim) * rng.uniform(0.2, 2.0)
    spread = max(float(np.abs(b - a).max()), 1e-3)
    return a, _random_region(rng, a, spread), b, _random_region(rng, b, spread)


def intersects_errors(norm_name: str, plan, rng) -> tuple[str, int, str]:
    """regions.intersects against verify (and linprog for l1): random pairs, also 1e-4 from touching."""
    wrong = meet = cases = ties = 0
    for _ in range(plan.pairs):
        a, axes_a, b, axes_b = _random_pair(rng, plan.max_dim)
        touch = float(regions.scaled_distance(a, axes_a, b[None], axes_b[None], norm_name)[0])
        scales = [1.0] + ([touch * (1 - 1e-4), touch * (1 + 1e-4)] if 0 < touch < np.inf else [])
        for s in scales:
            fast = bool(regions.intersects(a, s * axes_a, b[None], axes_b[None], norm_name)[0])
            depths = [_verify_depth(a, s * axes_a, b, axes_b, norm_name)]
            if norm_name == "l1":
                depths.append(_lp_depth(a, s * axes_a, b, axes_b))
            for depth in depths:
                if abs(depth - 1.0) <= TIE:
                    ties += 1
                    continue
                cases += 1
                wrong += fast != (depth < 1.0)
            meet += fast
    solvers = "verify and linprog" if norm_name == "l1" else "verify"
    detail = (
        f"{cases} comparisons with {solvers} on {plan.pairs} random pairs in 1-{plan.max_dim} dims, each also "
        f"scaled to 1e-4 inside and outside touching ({meet} meeting); {ties} ties within {TIE:g} skipped"
    )
    return f"regions.intersects ({norm_name}) vs {solvers}", wrong, detail


def inside_errors(norm_name: str, plan, rng) -> tuple[str, int, str]:
    """regions.inside against verify on random points, a third of them 1e-6 from the boundary."""
    wrong = inner = 0
    for i in range(plan.pairs):
        dim = int(rng.integers(1, plan.max_dim + 1))
        center = rng.normal(size=dim)
        axes = _random_region(rng, center, 1.0)
        direction = rng.normal(size=dim)
        direction /= np.sqrt(direction @ direction) if norm_name == "l2" else np.abs(direction).sum()
        level = (1 - 1e-6, 1 + 1e-6)[i % 2] if i % 3 == 0 else rng.uniform(0.3, 2.0)
        point = center + level * axes * direction
        fast = bool(regions.inside(point, center[None], axes[None], norm_name)[0])
        depth = _verify_depth(point, np.ones(dim), center, axes, norm_name, gap_a=0.0)
        wrong += fast != (depth < 1.0)
        inner += fast
    detail = f"{plan.pairs} points ({inner} inside), a third of them 1e-6 inside or outside the boundary"
    return f"regions.inside ({norm_name}) vs verify", wrong, detail


def scale_down_errors(norm_name: str, plan, rng) -> tuple[str, int, str]:
    """largest_disjoint_scale: disjoint from every foreign region at t (verify), and not at t (1 + 1e-6)."""
    unsound = loose = shrunk = 0
    for _ in range(plan.pairs // 3):
        x, axes, _, _ = _random_pair(rng, plan.max_dim)
        others = [x + rng.normal(size=x.size) * rng.uniform(0.5, 2.0) for _ in range(3)]
        centers = np.stack(others)
        spread = max(float(np.abs(centers - x).max()), 1e-3)
        axes_other = np.stack([_random_region(rng, c, spread) for c in others])
        t = regions.largest_disjoint_scale(x, axes, centers, axes_other, norm_name)
        depth = [_verify_depth(x, axes, c, ax, norm_name, gap_a=t) for c, ax in zip(centers, axes_other)]
        unsound += min(depth) < 1.0 - 1e-9 and t > 0
        if 0 < t < 1:
            shrunk += 1
            grown = [
                _verify_depth(x, axes, c, ax, norm_name, gap_a=t * (1 + 1e-6))
                for c, ax in zip(centers, axes_other)
            ]
            loose += min(grown) >= 1.0 - 1e-9
        elif t == 0:
            loose += min(depth) > 1.0  # t = 0 only when x lies in a foreign region
    cases = plan.pairs // 3
    detail = f"{cases} regions against 3 foreign ones ({shrunk} scaled down): {unsound} overlapping, {loose} not maximal"
    return f"largest_disjoint_scale ({norm_name}) vs verify", unsound + loose, detail


def memory_errors(norm_name: str, plan, rng) -> tuple[str, int, str]:
    """CertificateMemory over random overlapping certificates, then verify's all-pairs check of what it stored."""
    conflicts, changed, total = 0, 0, 0
    for on_inside in ("abstain", "adopt"):
        dim, count = 4, plan.memory_regions
        memory = CertificateMemory(norm_name, dim, on_inside=on_inside)
        centers = rng.normal(size=(count, dim))
        thetas = np.exp(rng.normal(0.0, 0.5, (count, dim))) * 0.3
        gaps, preds = np.zeros(count), np.zeros(count, dtype=np.int64)
        for i in range(count):
            decision = memory.certify(centers[i], thetas[i], rng.uniform(0.5, 2.5), int(rng.integers(3)))
            gaps[i], preds[i] = decision.gap, decision.prediction
            changed += decision.changed
        conflicts += len(verify_regions(centers, thetas, gaps, preds, norm_name).conflicts)
        total += count
    detail = (
        f"{total} certificates in 4 dims, 3 classes, on_inside abstain and adopt: memory changed {changed}"
    )
    return f"CertificateMemory ({norm_name}) vs verify", conflicts, detail
