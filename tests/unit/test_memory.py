"""CertificateMemory: no foreign overlaps after memory (checked by the independent verify_regions), exact
agreement with a brute-force memory without pre-filter, adopt geometry, order dependence and resume."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import anisocert.core.memory
from anisocert.core.memory import ABSTAIN, CertificateMemory, MemoryDecision
from anisocert.core.regions import Region, inside, intersects, largest_disjoint_scale
from anisocert.core.verify import verify_regions
from anisocert.errors import InputError, InvalidParameterError, UnknownNameError

NORMS = ("l2", "l1")


def unit_direction(rng, n, norm):
    u = rng.normal(size=n)
    return u / np.linalg.norm(u, ord=2 if norm == "l2" else 1)


def clustered_certificates(rng, count, dim, norm, classes=3, abstain=0.1):
    """Certificates around 4 cluster centers, so that many regions of different classes overlap."""
    hubs = rng.normal(size=(4, dim)) * 3.0
    spread = 0.6 / np.sqrt(dim) if norm == "l2" else 0.6 / dim
    out = []
    for _ in range(count):
        center = hubs[rng.integers(4)] + spread * rng.normal(size=dim)
        theta = np.exp(rng.uniform(np.log(0.3), np.log(1.0), dim))
        prediction = int(rng.integers(classes)) if rng.random() > abstain else ABSTAIN
        gap = float(rng.uniform(0.3, 1.5)) if prediction != ABSTAIN else 0.0
        out.append((center, theta, gap, prediction))
    return out


def verify_memory(memory: CertificateMemory):
    centers, axes, preds = memory.stored()
    return verify_regions(centers, axes, np.ones(len(memory)), preds, memory.norm)


# -- soundness --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_inside", ["abstain", "adopt"])
@pytest.mark.parametrize("norm", NORMS)
def test_memory_removes_every_foreign_overlap(norm, on_inside):
    rng = np.random.default_rng(10)
    certs = clustered_certificates(rng, 40, 4, norm)
    raw = verify_regions(*(np.array(column) for column in zip(*certs)), norm)
    assert len(raw.conflicts) > 20  # the raw certificates do overlap across classes
    memory = CertificateMemory(norm, 4, on_inside=on_inside)
    decisions = [memory.certify(*cert) for cert in certs]
    report = verify_memory(memory)
    assert report.ok and report.pairs_checked > 0, report.conflicts
    # the reported regions are exactly the stored ones, in order
    kept = [(c, d) for c, d in zip(certs, decisions) if d.prediction != ABSTAIN and d.gap > 0]
    centers, axes, preds = memory.stored()
    assert len(kept) == len(memory)
    for j, ((center, theta, _, _), d) in enumerate(kept):
        np.testing.assert_array_equal(centers[j], center)
        np.testing.assert_array_equal(axes[j], d.gap * theta)
        assert preds[j] == d.prediction
    statuses = {d.status for d in decisions}
    assert {"unchanged", "shrunk", "abstain"} <= statuses
    assert ("adopted" if on_inside == "adopt" else "abstain_inside") in statuses
    assert all(d.gap <= c[2] for c, d in zip(certs, decisions) if d.status != "adopted")
    assert sum(memory.status_counts.values()) == len(certs)


@pytest.mark.parametrize("norm", NORMS)
def test_same_class_overlaps_are_left_alone(norm):
    rng = np.random.default_rng(11)
    memory = CertificateMemory(norm, 4)
    for center, theta, gap, _ in clustered_certificates(rng, 30, 4, norm, abstain=0.0):
        decision = memory.certify(center, theta, gap, 2)
        assert decision == MemoryDecision(2, gap, "unchanged", 0)
    assert len(memory) == 30


@pytest.mark.parametrize("norm", NORMS)
def test_shrunk_region_is_disjoint_and_maximal(norm):
    rng = np.random.default_rng(12)
    for k in range(30):
        dim = 1 + k % 8
        memory = CertificateMemory(norm, dim)
        first = (rng.normal(size=dim), np.exp(rng.uniform(-1, 0, dim)), 1.0, 0)
        memory.certify(*first)
        theta = np.exp(rng.uniform(-1, 0, dim))
        x = first[0] + 1.2 * first[1] * unit_direction(rng, dim, norm)  # outside, near the first region
        decision = memory.decide(x, theta, 2.0, 1)
        assert decision.status == "shrunk" and decision.conflicts == 1
        stored = Region(first[0], first[1], first[2], norm)
        assert not Region(x, theta, decision.gap, norm).intersects(stored)
        assert Region(x, theta, decision.gap * (1 + 1e-6), norm).intersects(stored)


@pytest.mark.parametrize("norm", NORMS)
def test_adopt_gives_a_region_inside_the_foreign_region(norm):
    rng = np.random.default_rng(13)
    for k in range(20):
        dim = 1 + k % 10
        memory = CertificateMemory(norm, dim, on_inside="adopt")
        host = Region(rng.normal(size=dim), np.exp(rng.uniform(-1, 0, dim)), 1.5, norm)
        memory.certify(host.center, host.theta, host.gap, 7)
        x = host.center + 0.6 * host.axes * unit_direction(rng, dim, norm)
        theta = np.exp(rng.uniform(-1, 0, dim))
        decision = memory.certify(x, theta, 1.0, 3)
        assert (decision.prediction, decision.status, decision.conflicts) == (7, "adopted", 1)
        assert decision.gap > 0
        tips = np.concatenate([np.eye(dim), -np.eye(dim)])
        if norm == "l2":
            u = rng.normal(size=(500, dim))
            tips = np.concatenate([tips, u / np.linalg.norm(u, axis=1, keepdims=True)])
        assert host.contains(x + decision.gap * theta * tips).all()
        # the default abstains instead
        plain = CertificateMemory(norm, dim)
        plain.certify(host.center, host.theta, host.gap, 7)
        assert plain.decide(x, theta, 1.0, 3) == MemoryDecision(ABSTAIN, 0.0, "abstain_inside", 1)


# -- the pre-filter ---------------------------------------------------------------------------------------


def brute_force_decide(stored, norm, x, theta, gap, prediction):
    """spec section 6 without any pre-filter: every stored foreign region gets the exact tests."""
    foreign = [(c, a) for c, a, p in stored if p != prediction]
    if prediction == ABSTAIN or not foreign:
        return prediction, gap
    centers, axes = np.array([f[0] for f in foreign]), np.array([f[1] for f in foreign])
    if inside(x, centers, axes, norm).any():
        return ABSTAIN, 0.0
    hit = intersects(x, gap * theta, centers, axes, norm) if gap > 0 else np.zeros(len(foreign), bool)
    if not hit.any():
        return prediction, gap
    return prediction, gap * largest_disjoint_scale(x, gap * theta, centers[hit], axes[hit], norm)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("dim", "offset"), [(6, 0.0), (6, 1e4), (300, 1e3)])
def test_memory_equals_brute_force_without_prefilter(norm, dim, offset):
    rng = np.random.default_rng(14)
    memory = CertificateMemory(norm, dim)
    stored = []
    for center, theta, gap, prediction in clustered_certificates(rng, 80, dim, norm):
        center = center + offset * (rng.random() < 0.5)  # two far groups: large norms for the float32 mirror
        want = brute_force_decide(stored, norm, center, theta, gap, prediction)
        got = memory.certify(center, theta, gap, prediction)
        assert got.prediction == want[0]
        assert got.gap == pytest.approx(want[1], rel=1e-10, abs=0)
        if got.prediction != ABSTAIN and got.gap > 0:
            stored.append((center, got.gap * theta, got.prediction))


@pytest.mark.parametrize("dim", [64, 300])  # 300: the float32 head level (every 8th dimension) runs first
@pytest.mark.parametrize("norm", NORMS)
def test_prefilter_never_drops_a_ball_that_meets(norm, dim):
    """Stored regions placed at enclosing-ball distance (1 -+ 1e-9) * (R + R_j), behind a far first region;
    some differ from x only in the head dimensions, where the head's lower bound is the full distance."""
    rng = np.random.default_rng(15)
    memory = CertificateMemory(norm, dim)
    memory.add(np.full(dim, -3e3), np.ones(dim), 1.0, 5)  # the float32 mirror is shifted by this center
    x = rng.normal(size=dim) * 100.0
    theta, gap = np.exp(rng.uniform(-1, 0, dim)), 2.0
    R = gap * theta.max()
    meets = []
    for j in range(300):
        theta_j, gap_j = np.exp(rng.uniform(-2, 0, dim)), float(rng.uniform(0.5, 2.0))
        factor = [1 - 1e-9, 1 + 1e-9, rng.uniform(0.2, 3.0)][j % 3]
        direction = unit_direction(rng, dim, norm)
        if j % 2:
            direction[np.arange(dim) % 8 != 0] = 0.0
            direction /= np.linalg.norm(direction, ord=2 if norm == "l2" else 1)
        center_j = x + (R + gap_j * theta_j.max()) * factor * direction
        memory.add(center_j, theta_j, gap_j, int(rng.integers(3)))
        dist = np.linalg.norm(center_j - x, ord=2 if norm == "l2" else 1)
        if dist <= R + gap_j * theta_j.max():
            meets.append(j + 1)
    centers, axes, preds = memory.stored()
    candidates = set(memory._candidates(x, R, 1).tolist())
    foreign_meets = {j for j in meets if preds[j] != 1}
    assert len(foreign_meets) > 50 and foreign_meets <= candidates
    assert all(preds[j] != 1 for j in candidates)
    conflicts = set(np.flatnonzero(intersects(x, gap * theta, centers, axes, norm) & (preds != 1)).tolist())
    assert conflicts <= candidates


# -- order, resume, bookkeeping ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_order_dependence_is_deterministic(norm):
    rng = np.random.default_rng(16)
    certs = clustered_certificates(rng, 30, 3, norm)
    runs = []
    for order in (certs, certs, certs[::-1]):
        memory = CertificateMemory(norm, 3)
        runs.append([memory.certify(*c) for c in order])
        assert verify_memory(memory).ok
    assert runs[0] == runs[1]
    assert runs[2][::-1] != runs[0]
    # two overlapping regions: whichever comes first is kept
    a = (np.zeros(2), np.ones(2), 1.0, 0)
    b = (np.array([1.5, 0.0]), np.ones(2), 1.0, 1)
    for first, second in ((a, b), (b, a)):
        memory = CertificateMemory(norm, 2)
        assert memory.certify(*first).status == "unchanged"
        assert memory.certify(*second).status == "shrunk"


@pytest.mark.parametrize("norm", NORMS)
def test_add_rebuilds_memory_for_resume(norm):
    rng = np.random.default_rng(17)
    certs = clustered_certificates(rng, 40, 3, norm)
    original = CertificateMemory(norm, 3)
    decisions = [original.certify(*c) for c in certs[:30]]
    resumed = CertificateMemory(norm, 3)
    for (center, theta, _, _), d in zip(certs[:30], decisions):
        resumed.add(center, theta, d.gap, d.prediction)  # abstentions and gap 0 are skipped by add itself
    assert len(resumed) == len(original)
    for cert in certs[30:]:
        assert resumed.certify(*cert) == original.certify(*cert)


def test_abstentions_and_points_pass_through_unstored():
    memory = CertificateMemory("l2", 2)
    assert memory.certify([0.0, 0.0], 1.0, 0.0, ABSTAIN) == MemoryDecision(ABSTAIN, 0.0, "abstain", 0)
    assert memory.certify([0.0, 0.0], 1.0, 0.0, 4) == MemoryDecision(4, 0.0, "unchanged", 0)
    assert len(memory) == 0
    memory.certify([0.0, 0.0], 1.0, 1.0, 4)
    assert memory.decide([0.5, 0.0], 1.0, 0.0, 3).status == "abstain_inside"  # a point in a foreign region
    assert memory.decide([5.0, 0.0], 1.0, 0.0, 3) == MemoryDecision(3, 0.0, "unchanged", 0)
    assert memory.decide([0.5, 0.0], 1.0, 0.0, 3).changed


def test_storage_grows_and_keeps_regions():
    rng = np.random.default_rng(18)
    memory = CertificateMemory("l1", 5)
    rows = [
        (rng.normal(size=(1, 5)), rng.uniform(0.1, 1, 5), float(rng.uniform(0.1, 1)), k % 4)
        for k in range(150)
    ]
    for center, theta, gap, prediction in rows:
        assert memory.add(center, theta, gap, prediction)
    centers, axes, preds = memory.stored()
    assert centers.shape == (150, 5) and not centers.flags.writeable
    np.testing.assert_array_equal(centers, np.concatenate([r[0] for r in rows]))
    np.testing.assert_array_equal(axes, np.stack([r[2] * r[1] for r in rows]))
    np.testing.assert_array_equal(preds, [r[3] for r in rows])


def test_errors_name_the_value():
    with pytest.raises(UnknownNameError, match="norm='l3'"):
        CertificateMemory("l3", 4)
    with pytest.raises(UnknownNameError, match="on_inside='keep'"):
        CertificateMemory("l2", 4, on_inside="keep")
    with pytest.raises(InvalidParameterError, match="dim=0"):
        CertificateMemory("l2", 0)
    memory = CertificateMemory("l2", 4)
    with pytest.raises(InputError, match="center has 3 values"):
        memory.decide(np.zeros(3), 1.0, 1.0, 0)
    with pytest.raises(InputError, match="theta has 2 values"):
        memory.decide(np.zeros(4), np.ones(2), 1.0, 0)
    with pytest.raises(InvalidParameterError, match="theta"):
        memory.decide(np.zeros(4), 0.0, 1.0, 0)
    with pytest.raises(InvalidParameterError, match="gap=-1.0"):
        memory.decide(np.zeros(4), 1.0, -1.0, 0)
    with pytest.raises(InvalidParameterError, match="prediction=1.5"):
        memory.decide(np.zeros(4), 1.0, 1.0, 1.5)


def test_abstain_constant_and_docstring_example():
    from anisocert.core.smooth import ABSTAIN as SMOOTH_ABSTAIN

    assert ABSTAIN == SMOOTH_ABSTAIN
    assert doctest.testmod(anisocert.core.memory).failed == 0


def test_benchmark_runs_small(monkeypatch):
    monkeypatch.syspath_prepend(
        str(Path(__file__).parents[2] / "benchmarks")
    )  # benchmark code, not the package
    from memory_bench import memory_benchmark

    result = memory_benchmark(300, 32, "l1", seed=1)
    assert result["seconds"] > 0 and set(result["per_region_ms"]) == {30, 60, 150, 300}
    assert sum(result["statuses"].values()) == 300
