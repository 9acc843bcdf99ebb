"""Benchmark of CertificateMemory: one certify (decide + add) per region, as in a certification run.

Run: ``python benchmarks/memory_bench.py --n-regions 10000 --dim 3072 --norm l2``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from anisocert.core.memory import CertificateMemory

__all__ = ["memory_benchmark"]


def memory_benchmark(n_regions: int, dim: int, norm: str, seed: int = 0, *, near: float = 0.01) -> dict:
    """Time n_regions certify calls on synthetic certificates; few of them conflict.

    Centers are uniform in [0, 1]^dim (CIFAR-10-like pixels when dim = 3072), except that a fraction
    ``near`` of them lie close to an earlier center (a random direction, at an l_p distance uniform in
    [0, 0.4 * the largest gap]), where a different class often conflicts. theta is uniform in [0.12, 0.5] per pixel, the gap uniform in [0.1, 3.8]
    (l2) or [0.05, 1] (l1), the class uniform in 0..9. Only the certify calls are timed.

    Returns a dict: seconds (total), per_region_ms (mean over the 100 calls before each of a few
    memory sizes), statuses (counts) and the parameters.
    """
    rng = np.random.default_rng(seed)
    memory = CertificateMemory(norm, dim)
    gap_high = 3.8 if norm == "l2" else 1.0
    checkpoints = sorted({max(1, n_regions * k // 10) for k in (1, 2, 5, 10)})
    durations = np.empty(n_regions)
    centers = []
    for i in range(n_regions):
        if i and rng.random() < near:
            offset = rng.normal(size=dim)
            offset *= rng.uniform(0.0, 0.4 * gap_high) / np.linalg.norm(offset, ord=2 if norm == "l2" else 1)
            center = centers[rng.integers(len(centers))] + offset
        else:
            center = rng.random(dim)
        centers.append(center)
        theta = rng.uniform(0.12, 0.5, dim)
        gap = rng.uniform(0.1, gap_high)
        label = int(rng.integers(10))
        start = time.perf_counter()
        memory.certify(center, theta, gap, label)
        durations[i] = time.perf_counter() - start
    per_region = {int(c): float(durations[max(0, c - 100) : c].mean() * 1e3) for c in checkpoints}
    return {
        "n_regions": n_regions,
        "dim": dim,
        "norm": norm,
        "seed": seed,
        "seconds": float(durations.sum()),
        "per_region_ms": per_region,
        "statuses": dict(memory.status_counts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-regions", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=3072)
    parser.add_argument("--norm", default="l2", choices=["l2", "l1"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(memory_benchmark(args.n_regions, args.dim, args.norm, args.seed), indent=2))


if __name__ == "__main__":
    main()
