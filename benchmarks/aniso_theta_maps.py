"""Issue 23: theta maps of the same inputs under two (or more) ANCER runs, side by side, on one colour scale.

One row per input: the input, then each run's theta_x (memory-checked certificate: gap, radius and proxy radius
in the panel title; "iso" when the run fell back to the isotropic certificate). Reads the runs' stores with
``viz.perturbation.read_certificates`` and draws with the helpers of ``viz.figures`` (as `anisocert visualize`).

    python benchmarks/aniso_theta_maps.py "Gaussian=runs/g/ancer" "anisotropic=runs/a/ancer" \
        --idx 0 --idx 310 --out docs/img/aniso_theta_maps
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def main() -> None:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from anisocert.viz.figures import _channels
    from anisocert.viz.perturbation import read_certificates
    from anisocert.viz.plots import _STYLE, save_figure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR of ancer runs on the same data")
    parser.add_argument("--idx", type=int, action="append", required=True, help="an input (repeat)")
    parser.add_argument("--out", default="aniso_theta_maps", help="path stem of the PNG and PDF")
    args = parser.parse_args()
    runs = [(item.rpartition("=")[0], item.rpartition("=")[2]) for item in args.runs]
    certs, dataset = [], None
    for _, run in runs:
        _, dataset, by_idx = read_certificates(run, args.idx)
        certs.append(by_idx)
    thetas = [c[i].theta for c in certs for i in args.idx]
    lo, hi = min(float(t.min()) for t in thetas), max(float(t.max()) for t in thetas)
    rows, cols = len(args.idx), 1 + len(runs)
    with rc_context(_STYLE):
        fig = Figure(figsize=(1.25 * cols + 0.6, 1.25 * rows + 0.3), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False)
        for r, i in enumerate(args.idx):
            x = _channels(np.asarray(dataset.get(np.array([i]))[0], dtype=np.float64))[0]
            axes[r, 0].imshow(x, cmap="gray", vmin=0.0, vmax=1.0)
            axes[r, 0].set_title(f"input {i} (label {certs[0][i].label})", fontsize=5)
            for c, ((name, _), by_idx) in enumerate(zip(runs, certs, strict=True), start=1):
                cert = by_idx[i]
                shown = axes[r, c].imshow(
                    _channels(cert.theta)[0], cmap="viridis", norm=LogNorm(vmin=lo, vmax=hi)
                )
                proxy = cert.gap * math.exp(float(np.mean(np.log(cert.theta))))
                kind = "ANCER" if cert.anisotropic and not cert.fallback else "iso"
                ok = "" if cert.prediction == cert.label else ", wrong"
                axes[r, c].set_title(
                    f"{name} ({kind}{ok})\nradius {cert.gap * float(cert.theta.min()):.2f}, proxy {proxy:.2f}",
                    fontsize=5,
                )
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        bar = fig.colorbar(shown, ax=list(axes[:, 1:].flat), shrink=0.6)
        bar.set_label("theta_x (std, input units; log scale)", fontsize=5)
        bar.ax.tick_params(labelsize=5)
        for path in save_figure(fig, args.out):
            print(path)


if __name__ == "__main__":
    main()
