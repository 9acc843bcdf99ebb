"""Building the exact sampler's tables: arb (python-flint, core/grid.py) against the previous mpmath code.

An ANCER certification builds one table per distinct theta on the menu ladder, about 2 x 9.5 x 255 x theta
thresholds each, once per process. A benchmark, not a test: prints both times and their ratio, and checks
that both give the same tables.

    python benchmarks/exact_tables.py [--run RUN_DIR] [--sigma 0.5 --top 15]

With --run, the theta of that run's optimised inputs (menu-rounded, as the certification uses them);
otherwise every ladder step from sigma to top.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import time
from pathlib import Path

import numpy as np

from anisocert.core import grid


def _mpmath_build_left(theta: float, levels: int) -> list[int]:
    """The previous code: floor(Q erfc(odd / (2 sqrt 2 L theta)) / 2) at mpmath's 40 digits."""
    import mpmath

    K = max(1, math.ceil(grid.TAIL_Z * levels * theta))
    with mpmath.workdps(40):
        scale, root2 = mpmath.mpf(levels) * mpmath.mpf(theta), mpmath.sqrt(2)
        return [
            int(mpmath.floor(grid.Q * mpmath.erfc((mpmath.mpf(2 * K - 1 - 2 * i) / 2) / scale / root2) / 2))
            for i in range(K)
        ]


def _thetas(args) -> list[float]:
    if args.run is None:
        lo, hi = (math.floor(grid.MENU_STEPS * math.log2(v)) for v in (args.sigma, args.top))
        return sorted({float(np.float32(2 ** (j / grid.MENU_STEPS))) for j in range(lo, hi + 1)})
    con = sqlite3.connect(f"file:{Path(args.run) / 'run.sqlite'}?mode=ro", uri=True)
    values: set[float] = set()
    for (blob,) in con.execute("select theta from optimised where theta is not null"):
        values |= set(grid.menu_down(np.frombuffer(blob, dtype=np.float32)).tolist())
    return sorted(values)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a certify --method ancer run directory")
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--top", type=float, default=15.0)
    parser.add_argument("--levels", type=int, default=255)
    args = parser.parse_args(argv)
    thetas = _thetas(args)
    thresholds = sum(2 * math.ceil(grid.TAIL_Z * args.levels * t) for t in thetas)
    print(f"{len(thetas)} tables, theta {thetas[0]:.4g}..{thetas[-1]:.4g}, {thresholds:,} thresholds")
    start = time.perf_counter()
    arb = [grid._gaussian_thresholds(t, args.levels) for t in thetas]
    arb_s = time.perf_counter() - start
    start = time.perf_counter()
    old = [_mpmath_build_left(t, args.levels) for t in thetas]
    mpmath_s = time.perf_counter() - start
    same = all(new[1][: new[0]] == left for new, left in zip(arb, old))
    print(f"arb {arb_s:.1f} s, mpmath {mpmath_s:.1f} s: {mpmath_s / arb_s:.2f}x; same thresholds: {same}")


if __name__ == "__main__":
    main()
