"""Evaluation metrics over per-input records: certified accuracy at a radius and average certified radius.

Every function is pure numpy over arrays of shape (B,) (one entry per evaluated input). Abstentions and
wrong predictions count as 0 and the denominator is always B, all evaluated inputs. Radii are compared at
full precision: a radius of 0.49961 is not certified at 0.5. The same functions give the proxy-radius
metrics when called with ``radius_proxy`` in place of ``radius``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidParameterError, UnknownNameError

__all__ = [
    "L2_CIFAR_GRID",
    "L2_IMAGENET_GRID",
    "L1_GRID",
    "GRIDS",
    "AUTO",
    "auto_grid",
    "certified_accuracy",
    "average_certified_radius",
    "fine_grid",
    "resolve_grid",
]

# Standard reporting grids (spec section 3). Built from integer multiples so every value is exact.
L2_CIFAR_GRID = np.arange(7) * 0.25  # 0, 0.25, ..., 1.5
L2_IMAGENET_GRID = np.arange(7) * 0.5  # 0, 0.5, ..., 3.0
L1_GRID = np.arange(9) * 0.5  # 0, 0.5, ..., 4.0
GRIDS: dict[str, np.ndarray] = {"l2-cifar": L2_CIFAR_GRID, "l2-imagenet": L2_IMAGENET_GRID, "l1": L1_GRID}
AUTO = "auto"  # the grid fitted to the radii being tabulated (auto_grid)
_NICE_STEPS = (1.0, 1.25, 2.0, 2.5, 5.0)  # times a power of ten: 0.05, 0.1, 0.125, 0.2, 0.25, 0.5, 1, ...

_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def _records(radius, correct) -> tuple[np.ndarray, np.ndarray]:
    """Validate (radius, correct) of shape (B,) and return (float64 radius, bool correct)."""
    radius = np.asarray(radius, dtype=np.float64)
    correct = np.asarray(correct)
    if radius.ndim != 1 or correct.shape != radius.shape:
        raise InvalidParameterError(
            f"radius and correct must be 1-D arrays of the same length, got shapes {radius.shape} and "
            f"{correct.shape}; pass one entry per evaluated input"
        )
    if radius.size == 0:
        raise InvalidParameterError("no records: radius and correct are empty; evaluate at least one input")
    if not np.isin(correct, (0, 1)).all():
        raise InvalidParameterError(
            f"correct must hold only 0/1 (or booleans), got {np.unique(correct)[:5]!r}; abstentions are 0"
        )
    correct = correct.astype(bool)
    if np.isnan(radius[correct]).any() or (radius[correct] < 0).any():
        raise InvalidParameterError("radius must be >= 0 (not NaN) for every correct record")
    return radius, correct


def certified_accuracy(radius, correct, grid) -> np.ndarray:
    """Fraction of all inputs that are correct with radius >= R, for each R in grid.

    Parameters
    ----------
    radius : array of shape (B,)
        Certified radius per input (abstentions: any value, they are not correct).
    correct : array of shape (B,)
        1 (or True) where the smoothed prediction equals the label; 0 for wrong or abstained.
    grid : array of shape (G,)
        Radii R at which to evaluate. Compared at full precision, ``radius >= R``.

    Returns
    -------
    np.ndarray of shape (G,), float64 in [0, 1]. CA(0) is the smoothed clean accuracy.

    Examples
    --------
    >>> certified_accuracy([0.6, 0.49961, 0.0, 0.9], [1, 1, 0, 0], [0.0, 0.5])
    array([0.5 , 0.25])
    """
    radius, correct = _records(radius, correct)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or not np.isfinite(grid).all():
        raise InvalidParameterError(f"grid must be a 1-D array of finite radii, got {grid!r}")
    # Sort the certified radii once; #(r >= R) = B_correct - #(r < R), by binary search (no B x G matrix).
    certified = np.sort(radius[correct])
    count = certified.size - np.searchsorted(certified, grid, side="left")
    return count / radius.size


def average_certified_radius(radius, correct) -> float:
    """ACR: mean over all B inputs of radius * correct (wrong and abstained inputs contribute 0).

    Examples
    --------
    >>> average_certified_radius([0.6, 0.4, 7.0, 0.0], [1, 1, 0, 0])
    0.25
    """
    radius, correct = _records(radius, correct)
    return float(np.where(correct, radius, 0.0).sum() / radius.size)


def fine_grid(max_radius: float, num: int = 1001) -> np.ndarray:
    """num equally spaced radii from 0 to max_radius (for curves)."""
    if not np.isfinite(max_radius) or max_radius <= 0:
        raise InvalidParameterError(f"max_radius={max_radius!r} must be a finite number > 0, e.g. 1.5")
    return np.linspace(0.0, float(max_radius), int(num))


def auto_grid(max_radius: float, max_columns: int = 10) -> np.ndarray:
    """0, s, 2 s, ... up to max_radius, with the smallest round step s (1, 1.25, 2, 2.5 or 5 times a power
    of ten) that gives at most max_columns radii: 6 to 10 columns for the default, each of which some
    input reaches, so that no column of a table is zero for every run. [0] when nothing is certified.

    The published grids (GRIDS) suit CIFAR-10 or ImageNet models; a smaller model's radii (the digits' l1
    radii stay under 0.5) would fill all but their first columns with zeros.

    Examples
    --------
    >>> auto_grid(0.43).tolist()
    [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
    >>> auto_grid(1.6).tolist()
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    """
    if not np.isfinite(max_radius) or max_radius < 0:
        raise InvalidParameterError(f"max_radius={max_radius!r} must be a finite number >= 0")
    if max_radius == 0:
        return np.zeros(1)
    power = 10.0 ** np.floor(np.log10(max_radius / max_columns))
    steps = sorted(m * power * scale for m in _NICE_STEPS for scale in (0.1, 1.0, 10.0, 100.0))

    def count(s: float) -> int:  # multiples of s up to max_radius (0.3 / 0.05 is 5.999...: 6 of them)
        return int(np.floor(max_radius / s + 1e-9)) + 1

    step = next(s for s in steps if count(s) <= max_columns)
    # to 12 significant digits: 3 x 0.1 is the 0.3 a user reads, not 0.30000000000000004
    values = np.array([float(f"{k * step:.12g}") for k in range(count(step))])
    return values[values <= max_radius]  # never a radius past the largest one


def resolve_grid(grid: str | Sequence[float] | np.ndarray, radii=None) -> np.ndarray:
    """A grid from a name in GRIDS, 'auto', a 'start:stop:step' range (stop included), 'a,b,c' or an array.

    'auto' is auto_grid of the largest of ``radii`` (the certified radii being tabulated: those of the
    correct inputs of every run), which it needs.

    Examples
    --------
    >>> resolve_grid("0:1:0.25").tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> resolve_grid("auto", radii=[0.2, 0.0, 0.61]).tolist()
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    """
    if isinstance(grid, str):
        text = grid.strip()
        if text == AUTO:
            if radii is None:
                raise InvalidParameterError("grid='auto' is fitted to the runs' radii: pass radii")
            radii = np.asarray(radii, dtype=np.float64).reshape(-1)
            return auto_grid(float(radii.max()) if radii.size else 0.0)
        if text in GRIDS:
            return GRIDS[text].copy()
        if not any(ch.isdigit() for ch in text):
            raise UnknownNameError(
                f"grid={grid!r} is not a known grid; use {AUTO!r}, one of {sorted(GRIDS)}, 'start:stop:step' "
                "or 'a,b,c'"
            )
        values = _parse_grid(text, grid)
    else:
        values = np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise InvalidParameterError(f"grid={grid!r} must be a non-empty list of finite radii")
    return values


MAX_GRID = 100_000  # radii in a 'start:stop:step' grid: more is a typo, not a table


def _parse_grid(text: str, grid: str) -> np.ndarray:
    """'start:stop:step' (stop included) or 'a,b,c' to an array; InvalidParameterError otherwise."""
    match = _RANGE.match(text)
    try:
        if not match:
            return np.array([float(v) for v in text.split(",")])
        start, stop, step = (float(v) for v in match.groups())
        if not (np.isfinite([start, stop, step]).all() and step > 0 and stop >= start):
            raise ValueError
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        if count > MAX_GRID:
            raise ValueError
        return start + np.arange(count) * step
    except ValueError:
        raise InvalidParameterError(
            f"grid={grid!r} is not a valid grid; use one of {sorted(GRIDS)}, 'start:stop:step' "
            "(e.g. '0:1.5:0.25') or 'a,b,c'"
        ) from None
