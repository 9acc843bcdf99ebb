"""`make demo`: the ANCER paper in miniature on the embedded digits data and the shipped models.

l2 (Gaussian, sigma 0.25) and l1 (uniform, half-width 0.5): fixed vs isotropic data-dependent vs ANCER,
with memory-based certification, then the comparison report and plots. A documented quick preset keeps
it to a few minutes on 2 CPU cores; the library defaults stay the public ones (see QUICK below).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._allocator import keep_freed_memory
from .run.config import CertifyConfig
from .run.runner import certify_dataset

# Quick preset: fewer inputs, draws and optimisation steps than the public defaults
# (n = 100,000; 900 isotropic gradient steps; 100 ANCER steps with 100 draws each).
QUICK = dict(
    n0=100,
    n=5_000,
    alpha=0.001,
    skip=9,
    iso_method="votes",  # the default since issue 15 (the public gradient ascent: README, "--iso-method")
    iso_samples=200,
    ancer_iterations=40,
    ancer_samples=32,
    batch_size=2_000,
    inputs_per_batch=20,
)

SETTINGS = (
    ("l2", "gaussian", "builtin:digits-gaussian", 0.25),
    ("l1", "uniform", "builtin:digits-uniform", 0.5),
)
METHODS = ("fixed", "isotropic", "ancer")


def run_demo(out: Path, *, progress: bool = True) -> list[Path]:
    """Certify, compare and plot; returns the files written."""
    from .viz.report import load_results, write_report

    files: list[Path] = []
    for norm, noise, model, sigma in SETTINGS:
        runs = []
        for method in METHODS:
            run_dir = out / f"{norm}-{method}"
            t0 = time.perf_counter()
            config = CertifyConfig.from_flat(
                model=model,
                data="digits",
                noise=noise,
                method=method,
                sigma=sigma,
                label=f"{method} ({norm})",
                **QUICK,
            )
            result = certify_dataset(
                config, run_dir, progress=progress, command=f"python -m anisocert.demo --out {out}"
            )
            print(f"{result.text()}  [{time.perf_counter() - t0:.0f} s]")
            runs.append(run_dir)
        results = [load_results(r) for r in runs]
        # the published CIFAR-10 / l1 grids reach radii far past the digits' (all-zero columns): fitted
        written = write_report(results, out / f"report-{norm}", grid="auto")
        files.extend(written)
        md = next(p for p in written if p.suffix == ".md")
        print(f"\n## {norm}: {noise} noise, digits test set (every {QUICK['skip']}th input)\n")
        print(md.read_text())
    from .viz.visualize import demo_figures

    runs = [out / f"{norm}-{method}" for norm, *_ in SETTINGS for method in METHODS]
    files.extend(demo_figures(out / "figures", runs))
    return files


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    keep_freed_memory()
    t0 = time.perf_counter()
    files = run_demo(args.out, progress=not args.no_progress)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; files written:")
    for path in files:
        print(f"  {path}")


if __name__ == "__main__":
    main()
