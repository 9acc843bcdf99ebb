"""Sequential certification for a grid of radii: estimation draws in rounds, each input stops once its
place on the grid is settled.

Why the certificate still holds at alpha, whatever the stopping time: the looks n_1 < ... < n_K = n get
one-sided levels alpha_1, ..., alpha_K with sum alpha_k <= alpha. For one input, the event "the
Clopper-Pearson lower bound at alpha_k exceeds pA at some look k" has probability at most
sum_k alpha_k <= alpha (union bound over the K looks; each look's bound is exact for its own n_k draws).
Outside that event the bound is below pA at *every* look, so also at the look where the input stops,
however that look was chosen (by the upper bound, by the lower bound, by anything the draws say). The
stopping rule therefore only decides how many draws are spent, never the guarantee, and the upper bound
that helps decide needs no level of its own: its level ``stop_alpha`` trades draws against the chance
of stopping an input that a later look would have certified one grid radius higher. The reported
certificate is the one the lower bound at the stopping look gives, at full precision.

The grid is {0} plus the user's radii. An input's certified level is the largest grid index its
certificate reaches (-1: abstain); its reachable level is the largest one the lower bound of a later
look would reach if that look's hit rate were the current upper bound (all hits: the ceiling
alpha_j^(1/n_j)). It stops once certified >= reachable, or at the last look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from ..errors import InvalidParameterError
from .bounds import pA_lower
from .noise import NoiseFamily
from .sampling import BLOCK

__all__ = [
    "FIRST_LOOK",
    "FINAL_SHARE",
    "RATIO",
    "LookSchedule",
    "SequentialCounts",
    "binomial_draws",
    "grid_level",
    "pA_upper",
    "parse_radii",
    "run_looks",
    "settled",
]

FIRST_LOOK = 200  # draws at the first look (a multiple of BLOCK)
RATIO = 1.5  # growth of the looks
FINAL_SHARE = 0.8  # share of alpha spent at the last look (n draws); the others share the rest equally
STOP_ALPHA = 0.01  # level of the upper bound that stops inputs short of a grid radius (not a soundness level)
_SAFE = 1.0 - 1e-12  # shrinks every alpha_k so that their floating-point sum never exceeds alpha


def pA_upper(nA, n, alpha) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson upper bound on pA from nA successes in n draws (1 where nA = n).

    Vectorised over nA, n and alpha. Only the stopping rule uses it, never the certificate."""
    nA = np.asarray(nA, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        upper = beta.ppf(1.0 - np.asarray(alpha, dtype=np.float64), nA + 1, n - nA)
    return np.where(nA < n, upper, 1.0)


@dataclass(frozen=True)
class LookSchedule:
    """Looks (cumulative estimation draws n_1 < ... < n_K = n) and the one-sided level alpha_k of each.

    sum(alphas) <= alpha: the lower bounds at alpha_k hold at every look at once with probability
    >= 1 - alpha (union bound). Every look but the last is a multiple of BLOCK, so a round continues an
    input's noise stream block by block and its first n_k draws are those of a fixed-n run.
    """

    looks: tuple[int, ...]
    alphas: tuple[float, ...]
    alpha: float
    stop_alpha: float = STOP_ALPHA

    def __post_init__(self):
        looks, alphas = tuple(int(v) for v in self.looks), tuple(float(a) for a in self.alphas)
        object.__setattr__(self, "looks", looks)
        object.__setattr__(self, "alphas", alphas)
        assert len(looks) == len(alphas) >= 1, "one alpha per look"
        assert all(a < b for a, b in zip(looks, looks[1:])) and looks[0] >= 1, "looks must increase"
        assert all(v % BLOCK == 0 for v in looks[:-1]), "looks before the last are multiples of BLOCK"
        assert all(a > 0 for a in alphas) and sum(alphas) <= self.alpha, "alpha spent beyond alpha"

    @property
    def n(self) -> int:
        return self.looks[-1]

    @classmethod
    def geometric(
        cls,
        n: int,
        alpha: float,
        *,
        first: int = FIRST_LOOK,
        ratio: float = RATIO,
        final_share: float = FINAL_SHARE,
        stop_alpha: float = STOP_ALPHA,
    ) -> LookSchedule:
        """Looks first, first * ratio, ... (rounded down to multiples of BLOCK), then n; the last look
        gets final_share * alpha and the others share the rest equally (one look: all of alpha)."""
        if first < BLOCK or first % BLOCK:
            raise InvalidParameterError(f"first look={first} must be a positive multiple of {BLOCK}")
        if not ratio > 1:
            raise InvalidParameterError(f"ratio={ratio} must be > 1; e.g. 2")
        if not 0 < final_share <= 1:
            raise InvalidParameterError(f"final_share={final_share} must be in (0, 1]; e.g. 0.5")
        looks, size = [], float(first)
        while int(size) // BLOCK * BLOCK < n:
            look = int(size) // BLOCK * BLOCK
            if not looks or look > looks[-1]:
                looks.append(look)
            size *= ratio
        looks.append(int(n))
        if len(looks) == 1:
            return cls((int(n),), (alpha * _SAFE,), alpha, stop_alpha)
        early = alpha * (1 - final_share) / (len(looks) - 1)
        alphas = [early * _SAFE] * (len(looks) - 1) + [alpha * final_share * _SAFE]
        return cls(tuple(looks), tuple(alphas), alpha, stop_alpha)

    def to_dict(self) -> dict:
        """What run.json records: the looks and the level of each."""
        return {
            "looks": list(self.looks),
            "alphas": list(self.alphas),
            "alpha": self.alpha,
            "stop_alpha": self.stop_alpha,
        }


def parse_radii(radii) -> np.ndarray:
    """The decision grid: 0 plus the given radii (finite, > 0), ascending and distinct, float64."""
    hint = "must be finite radii > 0, e.g. 0.25,0.5,0.75,1.0 (0 is always on the grid)"
    try:
        parts = [p for p in radii.split(",") if p.strip()] if isinstance(radii, str) else list(radii)
        values = np.asarray([float(v) for v in parts], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"radii={radii!r} {hint}") from None
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InvalidParameterError(f"radii={radii!r} {hint}")
    return np.unique(np.concatenate([[0.0], values]))


def grid_level(noise: NoiseFamily, p, scale, grid: np.ndarray) -> np.ndarray:
    """Largest j with scale * gap(p) >= grid[j] where p >= 1/2 (full precision), -1 where p < 1/2."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        radius = np.asarray(scale, dtype=np.float64) * noise.gap(np.maximum(p, 0.5))
    level = np.searchsorted(grid, radius, side="right") - 1
    return np.where(p >= 0.5, level, -1)


def settled(noise: NoiseFamily, nA, look: int, schedule: LookSchedule, scale, grid, floor=-1) -> np.ndarray:
    """Per input, whether its grid place is settled after ``look`` (index into schedule.looks): the
    certified level reaches the reachable level, the reachable level is no higher than ``floor`` (a
    level another certificate already holds: the ANCER fallback), or this is the last look."""
    nA = np.asarray(nA, dtype=np.int64)
    if look == len(schedule.looks) - 1:
        return np.ones(nA.shape, dtype=bool)
    drawn, alpha_k = schedule.looks[look], schedule.alphas[look]
    upper = pA_upper(nA, drawn, schedule.stop_alpha)
    # the best bound a later look can give if its hit rate is the upper bound (all hits: the ceiling)
    later = zip(schedule.looks[look + 1 :], schedule.alphas[look + 1 :])
    best = np.max([pA_lower(upper * m, m, a) for m, a in later], axis=0)
    certified = grid_level(noise, pA_lower(nA, drawn, alpha_k), scale, grid)
    reachable = grid_level(noise, best, scale, grid)
    return (certified >= reachable) | (reachable <= floor)


@dataclass(frozen=True)
class SequentialCounts:
    """Estimation counts (B, C) of the draws made (row i sums to n_i = looks[stop[i]]), the stopping
    look per input, and the (n_i, alpha_i) its certificate is computed with."""

    counts: np.ndarray
    stop: np.ndarray
    n: np.ndarray
    alpha: np.ndarray


def run_looks(
    draw: Callable[[np.ndarray, int, int], np.ndarray],
    cA,
    num_classes: int,
    noise: NoiseFamily,
    schedule: LookSchedule,
    scale,
    grid: np.ndarray,
    floor=None,
) -> SequentialCounts:
    """Draw in rounds until every input's grid place is settled.

    draw(rows, start, end) returns the int counts (len(rows), C) of estimation draws start..end-1 of the
    inputs at positions ``rows`` (the same draws whatever the rounds: the certifier continues each
    input's noise stream, a simulation draws binomials). cA (B,): the class whose pA is bounded;
    scale (B,): min(theta) to decide on radius, exp(mean log theta) to decide on the proxy radius.
    floor (B,) grid levels: also stop once the reachable level is no higher (default -1: never).
    """
    cA = np.asarray(cA, dtype=np.int64)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), cA.shape)
    counts = np.zeros((cA.size, num_classes), dtype=np.int64)
    stop = np.full(cA.size, len(schedule.looks) - 1, dtype=np.int64)
    floor = np.broadcast_to(np.asarray(-1 if floor is None else floor, dtype=np.int64), cA.shape)
    open_ = np.ones(cA.size, dtype=bool)
    start = 0
    for k, end in enumerate(schedule.looks):
        rows = np.flatnonzero(open_)
        if rows.size == 0:
            break
        counts[rows] += np.asarray(draw(rows, start, end), dtype=np.int64)
        done = settled(noise, counts[rows, cA[rows]], k, schedule, scale[rows], grid, floor[rows])
        stop[rows[done]] = k
        open_[rows[done]] = False
        start = end
    looks, alphas = np.asarray(schedule.looks), np.asarray(schedule.alphas)
    return SequentialCounts(counts, stop, looks[stop], alphas[stop])


def binomial_draws(pA, rng: np.random.Generator) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """A draw function for run_looks that simulates f(x + e) == cA as Bernoulli(pA[i]) (class 0 = cA):
    the statistical checks run the certifier's own sequential path on exactly known probabilities."""
    pA = np.asarray(pA, dtype=np.float64)

    def draw(rows: np.ndarray, start: int, end: int) -> np.ndarray:
        hits = rng.binomial(end - start, pA[rows])
        return np.stack([hits, end - start - hits], axis=1)

    return draw
