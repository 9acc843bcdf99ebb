"""Issue 21: the MNIST tables of docs/results.md, from certify run directories (or certify.tsv files).

One markdown row per run: inputs, n (draws), certified accuracy at the anchor's radii 0-2.5 (Jeong & Shin
2020's grid), ACR, ACR proxy, the proxy ACR over the isotropic run's ACR (``--iso RUN``), the share of
anisotropic certificates kept, seconds per input; a run given as ``NAME=DIR`` is shown as NAME. ``--proxy`` gives
certified accuracy at proxy radius R (the radius of the ball of equal volume) on a wider grid. ``--anchor
SIGMA`` adds the published Gaussian LeNet row (60,000 training images, N = 100,000, all 10,000 test digits)
of /work/shared/reference/mnist-jeong2020 for that sigma.

    python benchmarks/mnist_tables.py "fixed=runs/g0.50/fixed10k" --iso runs/g0.50/iso10k --anchor 0.5
"""

from __future__ import annotations

import argparse

import numpy as np

from anisocert.core.metrics import average_certified_radius, certified_accuracy
from anisocert.viz.report import load_results

GRID = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5])
PROXY_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0])  # --proxy: the volume's radius
# Jeong & Shin 2020, released MNIST logs, Gaussian (Cohen) LeNet: certified accuracy (%) on GRID, ACR.
ANCHOR = {
    0.25: ([99.2, 98.5, 96.7, 93.1] + [0.0] * 7, 0.911),
    0.5: ([99.2, 98.3, 96.9, 94.3, 89.8, 82.0, 67.8, 44.9] + [0.0] * 3, 1.558),
    1.0: ([96.3, 94.4, 91.4, 86.8, 79.9, 71.0, 59.5, 46.1, 32.5, 19.6, 10.9], 1.618),
}


def _row(name: str, run, iso_acr: float | None, proxy_grid: bool = False) -> str:
    c = run.columns
    correct = c["correct"].astype(bool)
    if proxy_grid:
        acc = certified_accuracy(c["radius_proxy"], correct, PROXY_GRID)
    else:
        acc = certified_accuracy(c["radius"], correct, GRID)
    acr = average_certified_radius(c["radius"], correct)
    proxy = average_certified_radius(c["radius_proxy"], correct)
    gain = f"{proxy / iso_acr:.2f}x" if iso_acr else "-"
    kept = "-"
    if "fallback" in c and str(c.get("method", ["-"])[0]) == "ancer":
        kept = f"{1 - np.mean(c['fallback'].astype(float)):.0%}"
    draws = int(np.mean(c["draws"])) if "draws" in c else "-"
    secs = np.mean(c["time"].astype(float)) + np.mean(c.get("opt_time", np.zeros(1)).astype(float))
    cells = " | ".join(f"{100 * a:.1f}" for a in acc)
    return f"| {name} | {len(run)} | {draws} | {cells} | {acr:.3f} | {proxy:.3f} | {gain} | {kept} | {secs:.2f} |"


def _subset(run, keep: set):
    from anisocert.viz.results import Results

    mask = np.isin(run.columns["idx"], sorted(keep))
    return Results(run.name, {k: v[mask] for k, v in run.columns.items()}, run.meta, run.source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR or RUN_DIR")
    parser.add_argument("--iso", help="the isotropic run the proxy gain is measured against")
    parser.add_argument("--anchor", type=float, help="add the published row for this sigma")
    parser.add_argument("--common", action="store_true", help="only the inputs every run has (a partial run)")
    parser.add_argument("--proxy", action="store_true", help="certified accuracy at proxy radius R instead")
    args = parser.parse_args()
    named = [(item.rpartition("=")[0] or item, load_results(item.rpartition("=")[2])) for item in args.runs]
    iso = load_results(args.iso) if args.iso else None
    if args.common:
        runs = [r for _, r in named] + ([iso] if iso is not None else [])
        keep = set.intersection(*(set(r.columns["idx"].tolist()) for r in runs))
        named = [(name, _subset(r, keep)) for name, r in named]
        iso = _subset(iso, keep) if iso is not None else None
    iso_acr = None
    if iso is not None:
        iso_acr = average_certified_radius(iso.columns["radius"], iso.columns["correct"].astype(bool))
    radii = " | ".join(f"R={r:g}" for r in PROXY_GRID) if args.proxy else " | ".join(f"r={r:g}" for r in GRID)
    print(f"| run | inputs | draws | {radii} | ACR | ACR proxy | proxy / iso ACR | kept | s/input |")
    print("|---" * (8 + len(GRID)) + "|")
    for name, run in named:
        print(_row(name, run, iso_acr, args.proxy))
    if args.anchor is not None and not args.proxy:
        acc, acr = ANCHOR[args.anchor]
        cells = " | ".join(f"{a:.1f}" for a in acc)
        print(f"| Jeong & Shin 2020 (60k train) | 10000 | 100000 | {cells} | {acr:.3f} | - | - | - | - |")


if __name__ == "__main__":
    main()
