"""Certified accuracy and ACR against hand-computed examples; grids and grid parsing."""

import numpy as np
import pytest

from anisocert.core.metrics import (
    GRIDS,
    L1_GRID,
    L2_CIFAR_GRID,
    L2_IMAGENET_GRID,
    auto_grid,
    average_certified_radius,
    certified_accuracy,
    fine_grid,
    resolve_grid,
)
from anisocert.errors import InvalidParameterError, UnknownNameError

# Five inputs: a correct one at 0.6, a correct one at exactly 0.5, a correct one at 0.49961 (Cohen's files
# would print it as 0.5), a wrong prediction with a large radius, and an abstention (radius 0, correct 0).
RADIUS = np.array([0.6, 0.5, 0.49961, 2.0, 0.0])
CORRECT = np.array([1, 1, 1, 0, 0])


def test_certified_accuracy_hand_computed():
    grid = [0.0, 0.25, 0.49961, 0.5, 0.6, 0.61, 3.0]
    # Denominator 5 (all inputs). At 0.5 only 0.6 and 0.5 count (tie counts, 0.49961 does not).
    expected = np.array([3, 3, 3, 2, 1, 0, 0]) / 5
    np.testing.assert_array_equal(certified_accuracy(RADIUS, CORRECT, grid), expected)


def test_rounded_radius_not_certified_at_half():
    assert certified_accuracy([0.49961], [1], [0.5])[0] == 0.0
    assert certified_accuracy([0.5], [1], [0.5])[0] == 1.0
    assert certified_accuracy([np.nextafter(0.5, 0)], [True], [0.5])[0] == 0.0


def test_wrong_and_abstained_count_zero_in_denominator():
    # the wrong input with radius 2.0 is never counted, yet all 5 inputs are in the denominator
    np.testing.assert_array_equal(certified_accuracy(RADIUS, CORRECT, [1.0, 2.0]), [0.0, 0.0])
    assert certified_accuracy([0.0, 0.0], [1, 0], [0.0])[0] == 0.5


def test_acr_hand_computed():
    assert average_certified_radius(RADIUS, CORRECT) == pytest.approx((0.6 + 0.5 + 0.49961) / 5, abs=1e-15)
    assert average_certified_radius([0.6, 0.4, 7.0, 0.0], [1, 1, 0, 0]) == 0.25
    # NaN or negative radii of records that are not correct are ignored (abstentions)
    assert average_certified_radius([1.0, np.nan, -1.0], [1, 0, 0]) == pytest.approx(1 / 3)


def test_matches_brute_force_on_random_records():
    rng = np.random.default_rng(0)
    radius = np.round(rng.exponential(0.5, 2000), 2)  # many exact ties with the grid
    correct = rng.random(2000) < 0.7
    grid = np.arange(0, 2.01, 0.01)
    brute = np.array([np.mean(correct & (radius >= r)) for r in grid])
    np.testing.assert_array_equal(certified_accuracy(radius, correct, grid), brute)
    assert average_certified_radius(radius, correct) == pytest.approx(np.mean(radius * correct), rel=1e-12)


def test_standard_grids():
    np.testing.assert_array_equal(L2_CIFAR_GRID, [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    np.testing.assert_array_equal(L2_IMAGENET_GRID, [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_array_equal(L1_GRID, np.arange(0, 4.5, 0.5))
    assert set(GRIDS) == {"l2-cifar", "l2-imagenet", "l1"}


def test_resolve_grid():
    np.testing.assert_array_equal(resolve_grid("l1"), L1_GRID)
    np.testing.assert_array_equal(resolve_grid("0:1.5:0.25"), L2_CIFAR_GRID)
    np.testing.assert_array_equal(resolve_grid("0.5, 1"), [0.5, 1.0])
    np.testing.assert_array_equal(resolve_grid([0, 2]), [0.0, 2.0])
    with pytest.raises(UnknownNameError, match="l2-cifar"):
        resolve_grid("cifar")
    for bad in ["1:0:0.5", "0:1:0", "0:x:1", "", "1,,2"]:
        with pytest.raises(InvalidParameterError):
            resolve_grid(bad)
    assert fine_grid(2.0, 5).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_auto_grid_fits_the_radii():
    """6-10 columns from 0 in a round step, each reached by the largest radius, none left out."""
    nice = {1.0, 1.25, 2.0, 2.5, 5.0}
    for max_radius in np.concatenate([10 ** np.random.default_rng(0).uniform(-6, 3, 500), [0.3, 0.5, 1.0]]):
        grid = auto_grid(float(max_radius))
        step = grid[1]
        assert grid[0] == 0 and 6 <= len(grid) <= 10, (max_radius, grid)
        np.testing.assert_allclose(np.diff(grid), step, rtol=1e-9)
        mantissa = step / 10.0 ** np.floor(np.log10(step))
        assert min(abs(mantissa - m) for m in nice) < 1e-9, step
        assert grid[-1] <= max_radius < grid[-1] + step * (1 + 1e-9), (max_radius, grid)
    assert auto_grid(0.3).tolist() == [
        0.0,
        0.05,
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
    ]  # 0.3 itself, not 0.30000000000000004
    assert auto_grid(0.0).tolist() == [0.0]  # nothing certified
    np.testing.assert_array_equal(resolve_grid("auto", radii=[0.43, 0.1]), auto_grid(0.43))
    with pytest.raises(InvalidParameterError, match="auto"):
        resolve_grid("auto")  # needs the radii


@pytest.mark.parametrize(
    ("radius", "correct", "grid"),
    [
        ([0.1, 0.2], [1], [0.0]),  # length mismatch
        ([], [], [0.0]),  # no records
        ([0.1], [2], [0.0]),  # correct not 0/1
        ([-0.1], [1], [0.0]),  # negative certified radius
        ([np.nan], [1], [0.0]),  # NaN certified radius
        ([0.1], [1], [np.nan]),  # bad grid
    ],
)
def test_bad_inputs_raise(radius, correct, grid):
    with pytest.raises(InvalidParameterError):
        certified_accuracy(radius, correct, grid)
