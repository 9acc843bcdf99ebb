"""The exact sampler's noise law: the continuous noise rounded to the input grid (1/L) Z, as integer tables.

For on-grid x, round(x + e) = x + round(e), so averaging f over x + D with D = round(e) is smoothing
f o round with the continuous noise: the certificate formulas hold unchanged, in the arithmetic the
computer does (Voracek & Hein, ICLR 2023). The law of the noise index m (D = m / L):

- gaussian, theta the std: P(m) = Phi((m + 1/2) / (L theta)) - Phi((m - 1/2) / (L theta));
- uniform, theta the half-width: P(m) = |[(m - 1/2) / L, (m + 1/2) / L] n [-theta, theta]| / (2 theta).

A table holds integer masses w_m summing to Q = 2^62 (w_m from the integer thresholds floor(Q * CDF) at
the cell edges, CDF computed with mpmath at 40 digits, or exactly in rationals for uniform), support
|m| <= K (gaussian: the tail beyond K + 1/2 has probability below 1e-20, lumped into the end cells), and an
integer alias table (Vose) over 2^k columns of width 2^(62-k): a draw is one uniform integer u in [0, 2^62),
its top k bits pick the column, its low bits against the column's threshold pick the cell or its alias.
The table law is exactly w / Q. ``tv`` bounds its total variation from the rounded law (threshold rounding
+ the lumped tail); d coordinates cost at most d * tv of any probability, which the certificate subtracts
from pA_lower (``pA_slack``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["Q_BITS", "RoundedTable", "rounded_table", "TAIL_Z", "table_cache_info"]

Q_BITS = 62
Q = 1 << Q_BITS
TAIL_Z = 9.5  # gaussian support: |m| <= K = ceil(TAIL_Z L theta); Phi(-9.5) < 1.1e-21 per side
_DPS = 40  # mpmath digits for Phi: its error (~1e-40) is far below one threshold unit 2^-62


@dataclass(frozen=True)
class RoundedTable:
    """One noise law on the grid: masses (2K+1,) int64 of m = -K..K summing to 2^62, the alias table
    (cut, alias: (2^bits,) int64, column c gives cell c when low < cut[c], else alias[c]) and ``tv``, an
    upper bound on the total variation between w / 2^62 and the rounded law."""

    family: str
    theta: float
    levels: int
    K: int
    masses: np.ndarray
    bits: int
    cut: np.ndarray
    alias: np.ndarray
    tv: float


def _gaussian_thresholds(theta: float, levels: int) -> tuple[int, list[int], float]:
    """(K, thresholds floor(Q Phi((j + 1/2) / (L theta))) for j = -K..K-1, tail bound)."""
    import mpmath

    K = max(1, math.ceil(TAIL_Z * levels * theta))
    with mpmath.workdps(_DPS):
        scale = mpmath.mpf(levels) * mpmath.mpf(theta)  # theta is a float: exact in mpmath
        # Phi(-z) = erfc(z / sqrt 2) / 2, computed on the left half; the right half mirrors it (symmetric
        # masses, each threshold still within one unit of Q * CDF)
        left = [
            int(
                mpmath.floor(
                    Q * mpmath.erfc((mpmath.mpf(2 * K - 1 - 2 * i) / 2) / scale / mpmath.sqrt(2)) / 2
                )
            )
            for i in range(K)
        ]
        tail = float(mpmath.erfc((mpmath.mpf(2 * K + 1) / 2) / scale / mpmath.sqrt(2)) / 2)
    right = [Q - t for t in reversed(left)]
    return K, left + right, tail


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


def _alias(masses: list[int], bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer Vose over 2^bits columns of width 2^(62 - bits): exact, since every mass is an integer."""
    width = 1 << (Q_BITS - bits)
    size = 1 << bits
    w = masses + [0] * (size - len(masses))
    cut, alias = [width] * size, list(range(size))
    small = [i for i in range(size) if w[i] < width]
    large = [i for i in range(size) if w[i] >= width]
    while small and large:
        s, big = small.pop(), large[-1]
        cut[s], alias[s] = w[s], big
        w[big] -= width - w[s]
        if w[big] < width:
            small.append(large.pop())
    assert not small, "integer masses summing to Q fill every column exactly"
    return np.asarray(cut, dtype=np.int64), np.asarray(alias, dtype=np.int64)


def _build(family: str, theta: float, levels: int, bits: int | None) -> RoundedTable:
    maker = _gaussian_thresholds if family == "gaussian" else _uniform_thresholds
    K, thresholds, tail = maker(theta, levels)
    edges = [0, *thresholds, Q]
    masses = [b - a for a, b in zip(edges, edges[1:])]
    assert len(masses) == 2 * K + 1 and min(masses) >= 0 and sum(masses) == Q
    need = max(1, (2 * K).bit_length())  # 2^need >= 2K + 1
    bits = need if bits is None else bits
    assert need <= bits <= Q_BITS - 1
    cut, alias = _alias(masses, bits)
    # each threshold is within one unit of Q * CDF (floor on the left, its mirror on the right), so each
    # cell's mass is within 1/Q, the centre cell's within 2/Q, and an end cell also holds the tail beyond
    # it: TV <= ((2K + 2) / Q + 4 tail) / 2; one more unit covers mpmath's last digit
    tv = (2 * K + 3) / (2 * Q) + 2 * tail
    return RoundedTable(
        family, float(theta), int(levels), K, np.asarray(masses, np.int64), bits, cut, alias, tv
    )


_CACHE: dict[tuple, RoundedTable] = {}
_LOCK = threading.Lock()


def rounded_table(family: str, theta: float, levels: int, bits: int | None = None) -> RoundedTable:
    """The table of (family, theta, levels), with at least ``bits`` alias bits; cached process-wide.

    theta is taken as the float it is (a float32 theta converts exactly)."""
    assert family in ("gaussian", "uniform") and theta > 0 and levels >= 1
    key = (family, float(theta), int(levels), bits)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        hit = _build(family, float(theta), int(levels), bits)
        with _LOCK:
            _CACHE[key] = hit
    return hit


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
