"""The exact sampler: noisy inputs made in integers on the grid (1/L) Z, so certificates hold in floating point.

An input x on the grid has integer indices k (x = k / L per coordinate). A draw of noise is an integer
index m per coordinate, drawn from the rounded law's integer table (core/grid.py, by inversion) with uniform 62-bit
integers (``torch.randint(0, 2**62)``: torch takes a 64-bit random word modulo the range, exact for a power
of two). The network sees ``values[k + m]``, one float32 per grid index (float32(j) / L, computed once),
never a float sum: the input at x and at x + one grid step, from the same random integers, are the same
floats shifted by one grid value, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .grid import MENU_STEPS, Q_BITS, TAIL_Z, menu_down, rounded_table

__all__ = [
    "EXACT_ACCOUNTING",
    "ExactSampler",
    "check_on_grid",
    "grid_indices",
    "grid_values",
    "off_grid_error",
]

# What run.json says of the exact sampler's own error (docs/soundness.md section 2)
EXACT_ACCOUNTING = {
    "law": "continuous noise rounded to the grid k / levels; network input = float32(k + m) / levels",
    "random_bits": Q_BITS,
    "tail_z": TAIL_Z,
    "theta_menu": f"data-dependent sigma_x, theta_x rounded down to 2^(j / {MENU_STEPS})",
    "pA_slack": "sum over coordinates of each table's total-variation bound ((2K + 3) / 2^63 + 2 Phi(-(K + "
    "1/2) / (levels theta)), about 5e-16 at theta = 1, levels = 255), subtracted from every pA_lower",
}


def grid_values(levels: int, low: int, high: int, device=None) -> torch.Tensor:
    """float32(j) / L for j = low..high (float32 division of exact integers: correctly rounded)."""
    return torch.arange(low, high + 1, dtype=torch.float32).div_(float(levels)).to(device)


def grid_indices(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, on): k = round(x L) as int64 and whether x is that grid value to float32 precision, i.e.
    x == float32(k) / L exactly (what uint8 / L gives in float32) or the float32 nearest k / L when
    rounded through float64. One ulp off is off the grid: nextafter(1, 0) is not 1."""
    x32 = x.detach().to(torch.float32)
    k = torch.round(x32.double() * levels).to(torch.int64)
    via32 = k.to(torch.float32) / float(levels)
    via64 = (k.double() / levels).to(torch.float32)
    return k, (x32 == via32) | (x32 == via64)


def snap_to_grid(x: torch.Tensor, levels: int) -> torch.Tensor:
    """x rounded to the nearest grid value float32(k) / levels (--round)."""
    return torch.round(x.double() * levels).float() / float(levels)


def off_grid_error(idx: int, levels: int) -> InputError:
    """The one line that refuses an input off the grid."""
    return InputError(
        f"input {idx} is not on the grid k/{levels} (the exact sampler needs it); pass --round to round "
        "the inputs to the grid, --levels for another grid, or --sampler float"
    )


def check_on_grid(x: torch.Tensor, idx, levels: int) -> None:
    """InputError naming the first input of x (B, *D) that is off the grid k / levels."""
    on = grid_indices(x, levels)[1].reshape(x.shape[0], -1).all(dim=1)
    if not bool(on.all()):
        raise off_grid_error(int(np.asarray(idx).reshape(-1)[int((~on).nonzero()[0, 0])]), levels)


class ExactSampler:
    """The noise law rounded to the grid 1/levels, drawn from integer random bits.

    Holds only the grid; tables are cached process-wide per (family, theta, levels) (core/grid.py).
    rounding: snap inputs off the grid to the nearest grid value (else InputError naming the input).
    """

    name = "exact"

    def __init__(self, levels: int, *, rounding: bool = False):
        self.levels, self.rounding = int(levels), bool(rounding)

    def __repr__(self) -> str:
        return f"ExactSampler(levels={self.levels})"

    def menu(self, theta) -> np.ndarray:
        """Data-dependent theta (sigma_x, theta_x) rounded down to the shared menu (core/grid.py): the
        certificate then uses the theta actually sampled, and its region only shrinks."""
        return menu_down(theta)

    def batch(self, family: str, x: torch.Tensor, theta: torch.Tensor, idx) -> _ExactBatch:
        """The integer state of a batch: x (B, *D) and theta (B, *D) (per coordinate) on one device."""
        k, on = grid_indices(x, self.levels)
        if not self.rounding and not bool(on.all()):
            bad = int(np.asarray(idx).reshape(-1)[int((~on).reshape(x.shape[0], -1).any(1).nonzero()[0, 0])])
            raise off_grid_error(bad, self.levels)
        return _ExactBatch(family, self.levels, k, theta)

    def pA_slack(self, family: str, theta: torch.Tensor) -> np.ndarray:
        """(B,) upper bounds on |P_table - P_rounded| of any event of one draw: the sum over coordinates
        of each coordinate's table total variation (a product's TV is at most the sum of its factors')."""
        B = theta.shape[0]
        values, inverse = torch.unique(theta.detach().reshape(B, -1).float().cpu(), return_inverse=True)
        tv = torch.tensor(
            [rounded_table(family, float(v), self.levels).tv for v in values], dtype=torch.float64
        )
        return tv[inverse].sum(dim=1).numpy() * (1 + 1e-9)  # float64 summation slack, rounded up


class _ExactBatch:
    """The tables of the distinct theta values of a batch, laid end to end, and the inputs' grid indices.

    Each table keeps its own guide width (a function of its theta alone), so a draw maps u to the same
    noise index whatever other inputs share the batch: records depend on (seed, idx) only. Columns and
    cells are global (table t's start at col0_t and cell0_t); a coordinate's grid index is k + m =
    cell + start, with start = k - K_t - cell0_t precomputed per coordinate."""

    def __init__(self, family: str, levels: int, k: torch.Tensor, theta: torch.Tensor):
        device = k.device
        B = k.shape[0]
        values, inverse = torch.unique(theta.detach().reshape(B, -1).float().cpu(), return_inverse=True)
        tables = [rounded_table(family, float(v), levels) for v in values]
        cell0 = np.cumsum([0] + [len(t.upper) for t in tables])[:-1]
        col0 = np.cumsum([0] + [len(t.guide) for t in tables])[:-1]
        guide = [np.where(t.guide < 0, t.guide - c, t.guide + c) for t, c in zip(tables, cell0)]
        self.guide = torch.as_tensor(np.concatenate(guide)).to(device)
        self.upper = torch.as_tensor(np.concatenate([t.upper for t in tables])).to(device)
        self.thresholds = [torch.as_tensor(t.upper[:-1]).to(device) for t in tables]
        self.cell0 = [int(c) for c in cell0]
        reach = max(t.K for t in tables)
        low, high = int(k.min()) - reach, int(k.max()) + reach
        self.values = grid_values(levels, low, high, device)  # values[j - low] is grid index j
        inverse = inverse.reshape(B, -1)
        per_table = [[t.K, c, Q_BITS - t.bits, g] for t, c, g in zip(tables, cell0, col0)]
        K, cells, shift, cols = (
            torch.tensor(per_table, dtype=torch.int64)[:, j][inverse].to(device) for j in range(4)
        )
        self.start = k.reshape(B, -1) - low - K - cells
        self.table = inverse.to(device)
        self.shift, self.col0 = (int(shift[0, 0]), None) if len(tables) == 1 else (shift, cols)

    def write(self, i: int, u: torch.Tensor, out: torch.Tensor) -> None:
        """values[k_i + m] for m the noise indices of the random integers u (m, *D) into out (m, *D)."""
        draws = u.shape[0]
        flat = u.reshape(-1)
        if self.col0 is None:
            column = flat >> self.shift
        else:
            column = ((u.view(draws, -1) >> self.shift[i]) + self.col0[i]).view(-1)
        guide = torch.index_select(self.guide, 0, column)
        cell = guide ^ (guide >> 63)  # -1 - guide (= ~guide) where the column is flagged, else guide
        cell += flat >= torch.index_select(self.upper, 0, cell)
        hard = (guide < 0).nonzero().squeeze(1)  # columns that hold two thresholds or more (rare)
        if hard.numel():
            self._search(i, flat, cell, hard)
        cell = cell.view(draws, -1) + self.start[i]
        torch.index_select(self.values, 0, cell.view(-1), out=out.view(-1))

    def _search(self, i: int, flat: torch.Tensor, cell: torch.Tensor, at: torch.Tensor) -> None:
        """cell[at] = the number of thresholds <= u, by binary search in each coordinate's own table."""
        if len(self.thresholds) == 1:
            cell[at] = torch.searchsorted(self.thresholds[0], flat[at], right=True) + self.cell0[0]
            return
        tables = self.table[i][at % self.table.shape[1]]
        for t in torch.unique(tables).tolist():
            rows = at[tables == t]
            found = torch.searchsorted(self.thresholds[t], flat[rows], right=True)
            cell[rows] = found + self.cell0[t]

    def random(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Uniform integers in [0, 2^62) of the given shape (m, *D)."""
        return torch.randint(0, 1 << Q_BITS, shape, generator=generator, device=self.values.device)
