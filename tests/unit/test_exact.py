"""The exact sampler (core/grid.py, core/exact.py): the tables' law against the rounded law in high precision,
frequencies over 10^7 draws (chi-square), shift invariance bit for bit, the grid check and the theta menu."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from scipy.stats import chi2

from anisocert.core import grid
from anisocert.core.exact import ExactSampler, grid_indices
from anisocert.core.grid import Q, menu_down, rounded_table
from anisocert.core.sampling import count_predictions
from anisocert.errors import InputError


def _rounded_law(family: str, theta: float, levels: int, K: int) -> list:
    """P(m) for m = -K..K of the continuous law rounded to 1/levels, in high precision (mpmath / Fraction)."""
    if family == "gaussian":
        with mpmath.workdps(50):
            s = mpmath.mpf(levels) * mpmath.mpf(theta)
            cells = [
                mpmath.ncdf((m + mpmath.mpf(1) / 2) / s) - mpmath.ncdf((m - mpmath.mpf(1) / 2) / s)
                for m in range(-K, K + 1)
            ]
        return [Fraction(int(p.man)) * Fraction(2) ** int(p.exp) * (1 if p >= 0 else -1) for p in cells]
    h = Fraction(theta)
    out = []
    for m in range(-K, K + 1):
        lo, hi = max(Fraction(2 * m - 1, 2 * levels), -h), min(Fraction(2 * m + 1, 2 * levels), h)
        out.append(max(hi - lo, Fraction(0)) / (2 * h))
    return out


@pytest.mark.parametrize(
    ("family", "theta", "levels"),
    [("gaussian", 0.25, 255), ("gaussian", 0.5, 16), ("uniform", 0.3, 255), ("uniform", 0.5, 16)],
)
def test_tables_are_the_rounded_law_within_their_stated_error(family, theta, levels):
    t = rounded_table(family, theta, levels)
    exact = _rounded_law(family, theta, levels, t.K)
    # inversion draws cell j for u in [upper[j - 1], upper[j]): exactly the masses
    assert np.diff(np.concatenate([[0], t.upper])).tolist() == t.masses.tolist() and t.upper[-1] == Q
    diffs = [abs(Fraction(int(w), Q) - p) for w, p in zip(t.masses, exact)]
    # every cell within one threshold unit (the centre two: a floor and its mirror); the end cells also
    # carry the (tiny) tail
    assert max(diffs[1 : t.K] + diffs[t.K + 1 : -1]) <= Fraction(1, Q) and diffs[t.K] <= Fraction(2, Q)
    tv = sum(diffs) / 2 + (1 - sum(exact)) / 2
    assert float(tv) <= t.tv


def test_the_bound_can_fail():
    """A table whose thresholds were off by 2 units would exceed the per-cell check (the test has power)."""
    t = rounded_table("gaussian", 0.25, 255)
    exact = _rounded_law("gaussian", 0.25, 255, t.K)
    skewed = t.masses.copy()
    skewed[t.K] += 3
    skewed[t.K + 1] -= 3
    assert max(abs(Fraction(int(w), Q) - p) for w, p in zip(skewed, exact)) > Fraction(1, Q)


def _exact_gaussian_floors(theta: float, levels: int, K: int) -> list[int]:
    """floor(Q Phi((j + 1/2) / (L theta))) for j = -K..K-1 of the left half, at mpmath's 60 digits."""
    with mpmath.workdps(60):
        s = mpmath.mpf(levels) * mpmath.mpf(theta)
        return [int(mpmath.floor(Q * mpmath.ncdf((j + mpmath.mpf(1) / 2) / s))) for j in range(-K, 0)]


@pytest.mark.parametrize("prec", [grid._PREC, 24])
def test_gaussian_thresholds_are_the_exact_floors_even_when_balls_straddle(monkeypatch, prec):
    """At 24 bits most arb balls hold an integer: the recomputation with more bits must settle each one."""
    monkeypatch.setattr(grid, "_PREC", prec)
    K, thresholds, tail = grid._gaussian_thresholds(0.25, 255)
    assert thresholds[:K] == _exact_gaussian_floors(0.25, 255, K)
    assert thresholds[K:] == [Q - t for t in reversed(thresholds[:K])]
    with mpmath.workdps(30):
        assert mpmath.ncdf(-(K + mpmath.mpf(1) / 2) / (255 * mpmath.mpf(0.25))) <= tail < 1e-20


def test_a_missing_python_flint_names_the_install_in_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "flint", None)  # import fails as if not installed
    with pytest.raises(InputError, match="pip install python-flint") as err:
        grid._gaussian_thresholds(0.123, 255)
    assert "\n" not in str(err.value)


def _draw_from(sampler, family, theta, levels, u):
    """Noise indices at x = 0 from the given random integers u (draws, D)."""
    x = torch.zeros((1, *u.shape[1:]))
    batch = sampler.batch(family, x, theta.reshape(1, *u.shape[1:]), [0])
    out = torch.empty(u.shape)
    batch.write(0, u, out)
    return torch.round(out.double() * levels).long()


def _draw(sampler, family, theta, levels, shape, seed):
    """Noise indices m of shape (draws, *D) at x = 0 (write gives values[k + m]; recover m from the float)."""
    x = torch.zeros((1, *shape[1:]))
    batch = sampler.batch(family, x, theta.reshape(1, *shape[1:]), [0])
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(shape)
    batch.write(0, batch.random(shape, g), out)
    return torch.round(out.double() * levels).long()


@pytest.mark.parametrize(("family", "theta"), [("gaussian", 0.02), ("uniform", 0.05)])
def test_frequencies_over_ten_million_draws_match_the_rounded_law(family, theta):
    levels = 255
    t = rounded_table(family, theta, levels)
    m = _draw(ExactSampler(levels), family, torch.tensor([theta]), levels, (10_000_000, 1), seed=3).reshape(
        -1
    )
    observed = torch.bincount(m + t.K, minlength=2 * t.K + 1).numpy().astype(np.float64)
    expected = np.array([float(p) for p in _rounded_law(family, theta, levels, t.K)]) * m.numel()
    keep = expected >= 5
    stat = float((((observed - expected) ** 2)[keep] / expected[keep]).sum()) + 0.0
    p = chi2.sf(stat, int(keep.sum()) - 1)
    assert p > 1e-4, (stat, p)
    # the same check rejects a law 2 % too wide (power)
    wide = np.array([float(p) for p in _rounded_law(family, theta * 1.02, levels, t.K)]) * m.numel()
    stat_wide = float((((observed - wide) ** 2)[keep] / wide[keep]).sum())
    assert chi2.sf(stat_wide, int(keep.sum()) - 1) < 1e-6


def test_per_coordinate_tables_draw_each_coordinate_from_its_own_law():
    levels, thetas = 16, torch.tensor([0.05, 0.1, 0.05, 0.2])
    m = _draw(ExactSampler(levels), "gaussian", thetas, levels, (1_000_000, 4), seed=5)
    for j, theta in enumerate(thetas.tolist()):
        t = rounded_table("gaussian", theta, levels)
        observed = torch.bincount(m[:, j] + t.K, minlength=2 * t.K + 1).numpy()
        expected = np.array([float(p) for p in _rounded_law("gaussian", theta, levels, t.K)]) * m.shape[0]
        keep = expected >= 5
        stat = (((observed - expected) ** 2)[keep] / expected[keep]).sum()
        assert chi2.sf(stat, int(keep.sum()) - 1) > 1e-4


@pytest.mark.parametrize("theta", [0.02, 0.5, 1.0])
def test_the_guide_table_draws_the_inversion_cell(theta):
    """Cell = number of thresholds <= u (searchsorted), for random u and for u at every threshold and
    next to it, including columns that hold several thresholds (the tails)."""
    levels, theta = 255, float(np.float32(theta))  # the sampler's theta is a float32
    t = rounded_table("gaussian", theta, levels)
    edges = torch.as_tensor(t.upper[:-1])
    u = torch.cat(
        [torch.randint(0, Q, (200_000,), generator=torch.Generator().manual_seed(0)), edges, edges - 1]
    )
    u = u.clamp(0, Q - 1)
    m = _draw_from(ExactSampler(levels), "gaussian", torch.tensor([theta]), levels, u[:, None])
    assert torch.equal(m.reshape(-1), torch.searchsorted(edges, u, right=True) - t.K)
    assert (t.guide < 0).any()  # the binary-search path is exercised


def test_draws_are_monotone_in_u_so_nearby_thetas_share_their_draws():
    """Common random numbers: the same u at theta and at 1.02 theta give noise indices about 1.02 times
    the other, sign for sign (an alias table would scramble them)."""
    u = torch.randint(0, Q, (100_000, 1), generator=torch.Generator().manual_seed(0))
    a, b = (
        _draw_from(ExactSampler(255), "gaussian", torch.tensor([s]), 255, u.clone()) for s in (0.25, 0.255)
    )
    assert (a * b >= 0).all() and (b.abs() >= a.abs()).all()
    assert ((b - a).abs() <= 1 + 0.03 * a.abs()).all()  # b is about 1.02 a (quantile coupling)


def test_shift_by_one_grid_step_is_bit_for_bit():
    """The same random integers at x and at x + 1/L: the same floats, one grid value further on."""
    levels, shape = 255, (500, 3, 4, 4)
    k = torch.randint(1, 254, (1, *shape[1:]))
    x0, x1 = k.float() / levels, (k + 1).float() / levels
    theta = torch.full((1, *shape[1:]), 0.5)
    theta[0, 1] = 0.25  # two tables
    sampler, u = (
        ExactSampler(levels),
        torch.randint(0, 2**62, shape, generator=torch.Generator().manual_seed(0)),
    )
    outs = []
    for x in (x0, x1):
        out = torch.empty(shape)
        sampler.batch("gaussian", x, theta, [0]).write(0, u.clone(), out)
        outs.append(out)
    index0 = torch.round(outs[0].double() * levels).long()
    index1 = torch.round(outs[1].double() * levels).long()
    assert torch.equal(index1, index0 + 1)
    values = {}
    for out, index in zip(outs, (index0, index1)):
        for v, j in zip(out.reshape(-1).tolist(), index.reshape(-1).tolist()):
            assert values.setdefault(j, v) == v  # one float per grid index, bit for bit
    assert all(np.float32(v) == np.float32(np.float32(j) / np.float32(levels)) for j, v in values.items())


def test_the_float_sampler_is_not_shift_invariant():
    """Why the exact sampler exists: x + theta * u reaches one grid value through several floats."""
    u = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    noisy = (torch.tensor(200.0 / 255) + 0.5 * u).double()
    index = torch.round(noisy * 255)
    distinct = {}
    for v, j in zip(noisy.tolist(), index.tolist()):
        distinct.setdefault(j, set()).add(v)
    assert max(len(s) for s in distinct.values()) > 1


def test_off_grid_inputs_are_refused_with_their_index_or_rounded():
    x = torch.ones(3, 1, 4, 4)
    x[2, 0, 1, 1] = float(np.nextafter(np.float32(1), np.float32(0)))
    k, on = grid_indices(x, 255)
    assert not bool(on[2, 0, 1, 1]) and bool(on[:2].all())
    with pytest.raises(InputError, match="input 12 is not on the grid k/255"):
        ExactSampler(255).batch("gaussian", x, torch.full_like(x, 0.5), [10, 11, 12])
    ExactSampler(255, rounding=True).batch("gaussian", x, torch.full_like(x, 0.5), [10, 11, 12])


def test_count_predictions_with_the_exact_sampler_depends_only_on_seed_and_idx():
    levels = 16
    x = torch.randint(0, 17, (5, 6)).float() / levels
    model = torch.nn.Linear(6, 3)
    kw = dict(seed=1, phase=1, num_classes=3, sampler=ExactSampler(levels))
    full = count_predictions(
        model, _gaussian(), x, torch.tensor(0.3), 700, idx=range(5), batch_size=1000, **kw
    )
    parts = [
        count_predictions(
            model, _gaussian(), x[i : i + 1], torch.tensor(0.3), 700, idx=[i], batch_size=150, **kw
        )
        for i in (3, 0)
    ]
    assert torch.equal(parts[0][0], full[3]) and torch.equal(parts[1][0], full[0])


def _gaussian():
    from anisocert.core.noise import get_noise

    return get_noise("gaussian")


def test_menu_rounds_down_onto_one_shared_ladder():
    values = np.array([0.25, 0.3, 0.12345, 1.0, 0.9999, 2.5], dtype=np.float32)
    out = menu_down(values)
    assert np.all(out <= values) and np.all(out > values / 2 ** (1 / 32) * 0.9999999)
    assert out[0] == np.float32(0.25) and out[3] == np.float32(1.0)  # ladder points stay where they are
    theta = np.array([0.3, 0.31, 0.5], dtype=np.float32)
    assert np.all(menu_down(theta) >= menu_down(np.float32(0.3)))  # theta_x >= sigma_x survives
    assert len(set(menu_down(np.linspace(0.2, 0.4, 1000, dtype=np.float32)).tolist())) <= 33


def test_sequential_and_ancer_runs_use_the_exact_sampler_per_input():
    """Sequential looks continue each input's exact stream (records depend on (seed, idx) only), and
    ANCER certifies sigma_x and theta_x rounded down onto the menu, theta_x >= sigma_x kept."""
    from anisocert import Budget, SigmaSearch, ThetaSearch, ancer, load_data, load_model
    from anisocert.core.smooth import Smoothed

    model = load_model("builtin:digits-gaussian", device="cpu").module
    x = load_data("digits").get([0, 1, 2])
    smoothed = Smoothed(model, "gaussian", batch_size=1000, device="cpu", sampler=ExactSampler(16))
    kw = dict(n0=20, n=1000, alpha=0.01, radii=(0.25, 0.5))
    together = smoothed.certify(x, 0.25, idx=[7, 8, 9], **kw)
    alone = smoothed.certify(x[1:2], 0.25, idx=[8], **kw)
    assert together.radius[1] == alone.radius[0] and (together.counts[1] == alone.counts[0]).all()
    budget = Budget(n0=20, n=500, alpha=0.01)
    result = ancer(
        model,
        "gaussian",
        x,
        sigma0=0.25,
        budget=budget,
        sigma_search=SigmaSearch(method="votes", samples=20, grid_points=3, refine_steps=1),
        theta_search=ThetaSearch(iterations=3, samples=8),
        sampler=ExactSampler(16),
    )
    theta = result.theta.reshape(3, -1)
    assert np.array_equal(menu_down(theta), theta) and np.array_equal(menu_down(result.sigma), result.sigma)
    assert (theta >= result.sigma[:, None].astype(np.float32)).all()


def test_an_inputs_draws_do_not_depend_on_the_other_thetas_in_its_batch():
    """Tables of different widths (theta 0.05 and 1.0 at L = 255) batched together: each input's counts are
    those it gets alone."""
    levels = 255
    x = torch.randint(0, 256, (3, 6), generator=torch.Generator().manual_seed(1)).float() / levels
    theta = torch.tensor([[0.05], [1.0], [0.3]]).expand(3, 6).clone()
    theta[2, :3] = 0.05
    model = torch.nn.Linear(6, 4)
    kw = dict(seed=2, phase=1, num_classes=4, sampler=ExactSampler(levels), batch_size=1000)
    full = count_predictions(model, _gaussian(), x, theta, 400, idx=[5, 6, 7], **kw)
    for i in range(3):
        alone = count_predictions(model, _gaussian(), x[i : i + 1], theta[i : i + 1], 400, idx=[5 + i], **kw)
        assert torch.equal(alone[0], full[i])
