"""The exact sampler's noise law: the continuous noise rounded to the input grid (1/L) Z, as integer tables.

For on-grid x, round(x + e) = x + round(e), so averaging f over x + D with D = round(e) is smoothing
f o round with the continuous noise: the certificate formulas hold unchanged, in the arithmetic the
computer does (Voracek & Hein, ICLR 2023). The law of the noise index m (D = m / L):

- gaussian, theta the std: P(m) = Phi((m + 1/2) / (L theta)) - Phi((m - 1/2) / (L theta));
- uniform, theta the half-width: P(m) = |[(m - 1/2) / L, (m + 1/2) / L] n [-theta, theta]| / (2 theta).

A table holds the integer thresholds T_j = floor(Q * CDF) at the cell edges (Q = 2^62; each floor exact: CDF
bounded by arb balls, or exact rationals for uniform), support |m| <= K (gaussian: the tail beyond
K + 1/2 has probability below 1e-20, lumped into the end cells). A draw is one uniform integer u in
[0, 2^62) and its cell is the number of thresholds <= u (inversion): the table law is exactly the masses
w / Q, and the map u -> m is monotone, so draws at two nearby theta from the same u are nearly the same
(common random numbers, as x + theta * u gives: the ANCER fallback compares sigma_x and theta_x so). A guide
table over 2^bits columns of u's top bits gives the cell at the column's start; one comparison finishes
the draw where the column holds at most one threshold, a binary search where it holds more (rare). ``tv`` bounds its total variation from the rounded law (threshold rounding
+ the lumped tail); d coordinates cost at most d * tv of any probability, which the certificate subtracts
from pA_lower (``pA_slack``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import InputError

__all__ = ["Q_BITS", "RoundedTable", "rounded_table", "TAIL_Z", "table_cache_info"]

Q_BITS = 62
Q = 1 << Q_BITS
TAIL_Z = 9.5  # gaussian support: |m| <= K = ceil(TAIL_Z L theta); Phi(-9.5) < 1.1e-21 per side
_PREC = 80  # arb working bits: a ball spans ~2^-18 of a threshold unit, so a floor rarely needs more


@dataclass(frozen=True)
class RoundedTable:
    """One noise law on the grid: masses (2K+1,) int64 of m = -K..K summing to 2^62; upper (2K+1,) int64,
    the upper edge of each cell's range of u (the thresholds, then Q); guide (2^bits,) int64: the cell
    holding the column's first u, as -1 - cell where the column holds two thresholds or more; and ``tv``,
    an upper bound on the total variation between masses / 2^62 and the rounded law."""

    family: str
    theta: float
    levels: int
    K: int
    masses: np.ndarray
    upper: np.ndarray
    bits: int
    guide: np.ndarray
    tv: float


def _gaussian_thresholds(theta: float, levels: int) -> tuple[int, list[int], float]:
    """(K, thresholds floor(Q Phi((j + 1/2) / (L theta))) for j = -K..K-1, tail bound), every floor exact.

    Arb balls (python-flint) bound each erfc rigorously, so a floor is settled unless its ball holds an
    integer; such a one is recomputed with more bits. About 5 us a threshold (mpmath: 36 us), and a theta
    of 20 has 48,000 of them."""
    K = max(1, math.ceil(TAIL_Z * levels * theta))
    # Phi(-z) = erfc(z / sqrt 2) / 2 at z = odd / (2 L theta), odd = 2K - 1, 2K - 3, ..., 1: the left half;
    # the right half mirrors it (symmetric masses, each threshold still within one unit of Q * CDF)
    left = _left_floors(theta, levels, range(2 * K - 1, 0, -2), _PREC)
    for i, floor in enumerate(left):
        prec = _PREC
        while floor is None:  # rare: its ball held an integer
            prec *= 2
            (floor,) = _left_floors(theta, levels, [2 * K - 1 - 2 * i], prec)
        left[i] = floor
    right = [Q - t for t in reversed(left)]
    return K, left + right, _tail_bound(theta, levels, 2 * K + 1)


def _left_floors(theta: float, levels: int, odds, prec: int) -> list[int | None]:
    """floor(Q Phi(-odd / (2 L theta))) = floor(Q erfc(odd / (2 sqrt 2 L theta)) / 2) per odd, None where
    prec bits leave it unsettled."""
    arb, ctx = _arb()
    with ctx.workprec(prec):
        step = 1 / (2 * arb(levels) * arb(theta) * arb(2).sqrt())  # theta is a float: exact in arb
        half_q = arb(Q) / 2
        floors = [(half_q * (odd * step).erfc()).floor().unique_fmpz() for odd in odds]
    return [None if f is None else int(f) for f in floors]


def _tail_bound(theta: float, levels: int, odd: int) -> float:
    """A float at or above Phi(-odd / (2 L theta))."""
    arb, ctx = _arb()
    with ctx.workprec(_PREC):
        phi = (odd / (2 * arb(levels) * arb(theta) * arb(2).sqrt())).erfc() / 2
        return math.nextafter(float(phi.upper()), math.inf)


def _arb():
    """python-flint's arb type and context, or a one-line error that names the fix."""
    try:
        from flint import arb, ctx
    except ImportError:
        raise InputError(
            "the exact sampler (the default on gridded data) needs the package python-flint for its noise "
            "tables: pip install python-flint, or certify with --sampler float"
        ) from None
    return arb, ctx


def _uniform_thresholds(theta: float, levels: int) -> tuple[int, list[int], float]:
    """(K, thresholds floor(Q F((j + 1/2) / L)) for j = -K..K-1, 0): F the CDF of U[-theta, theta], exact."""
    h = Fraction(theta)
    K = max(1, math.ceil(h * levels - Fraction(1, 2)))  # the last cell whose lower edge lies below theta
    thresholds = []
    for j in range(-K, K):
        edge = Fraction(2 * j + 1, 2 * levels)
        F = min(max((edge + h) / (2 * h), Fraction(0)), Fraction(1))
        thresholds.append(math.floor(Q * F))
    return K, thresholds, 0.0


def _guide(thresholds: np.ndarray, bits: int) -> np.ndarray:
    """Per column c of width W = 2^(62 - bits): the cell of u = c W, flagged -1 - cell when the column
    [c W, (c + 1) W) holds two thresholds or more (one comparison would not settle the cell)."""
    width = 1 << (Q_BITS - bits)
    starts = np.arange(1 << bits, dtype=np.int64) * width
    first = np.searchsorted(thresholds, starts, side="right")
    last = np.searchsorted(thresholds, starts + (width - 1), side="right")
    return np.where(last - first >= 2, -1 - first, first).astype(np.int64)


def _build(family: str, theta: float, levels: int) -> RoundedTable:
    maker = _gaussian_thresholds if family == "gaussian" else _uniform_thresholds
    K, thresholds, tail = maker(theta, levels)
    edges = [0, *thresholds, Q]
    masses = [b - a for a, b in zip(edges, edges[1:])]
    assert len(masses) == 2 * K + 1 and min(masses) >= 0 and sum(masses) == Q
    bits = (2 * K).bit_length() + 2  # about four columns per cell: few columns hold two thresholds
    upper = np.asarray([*thresholds, Q], dtype=np.int64)
    guide = _guide(np.asarray(thresholds, dtype=np.int64), bits)
    # each threshold is within one unit of Q * CDF (floor on the left, its mirror on the right), so each
    # cell's mass is within 1/Q, the centre cell's within 2/Q, and an end cell also holds the tail beyond
    # it: TV <= ((2K + 2) / Q + 4 tail) / 2; one more unit is spare
    tv = (2 * K + 3) / (2 * Q) + 2 * tail
    return RoundedTable(
        family, float(theta), int(levels), K, np.asarray(masses, np.int64), upper, bits, guide, tv
    )


_CACHE: dict[tuple, RoundedTable] = {}
_LOCK = threading.Lock()


def rounded_table(family: str, theta: float, levels: int) -> RoundedTable:
    """The table of (family, theta, levels); cached process-wide.

    theta is taken as the float it is (a float32 theta converts exactly)."""
    assert family in ("gaussian", "uniform") and theta > 0 and levels >= 1
    key = (family, float(theta), int(levels))
    with _LOCK:  # builds one at a time, too: arb's working precision is process-wide
        if key not in _CACHE:
            _CACHE[key] = _build(family, float(theta), int(levels))
        return _CACHE[key]


def table_cache_info() -> int:
    """How many tables this process holds (for tests and benchmarks)."""
    return len(_CACHE)


MENU_STEPS = 32  # the theta menu: the geometric ladder 2^(j / 32) (steps of 2.2 %), shared by all inputs


def menu_down(theta) -> np.ndarray:
    """Each value rounded DOWN to the ladder float32(2^(j / MENU_STEPS)), as float32: few distinct theta
    (few tables) across inputs, and regions that only shrink. Monotone, so theta_x >= sigma_x survives."""
    t = np.asarray(theta, dtype=np.float32)
    j = np.floor(MENU_STEPS * np.log2(t.astype(np.float64)))

    def ladder(j):
        return np.exp2(j / MENU_STEPS).astype(np.float32)

    j = np.where(ladder(j) > t, j - 1, j)  # the float64 log can land one step off either way
    j = np.where(ladder(j + 1) <= t, j + 1, j)
    out = ladder(j)
    assert np.all(out <= t)
    return out
