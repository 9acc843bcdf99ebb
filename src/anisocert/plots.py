"""Figures for reports: certified accuracy vs radius, one line per run.

matplotlib is imported inside the functions and figures are drawn on the Agg canvas without pyplot, so
plotting works headless and never changes the caller's pyplot backend. Sizes suit a paper column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError
from .metrics import certified_accuracy, fine_grid

__all__ = ["COLUMN_FIGSIZE", "plot_certified_accuracy"]

COLUMN_FIGSIZE = (3.5, 2.6)  # inches: one column of a two-column paper
_NORMS = {"gaussian": "l2", "uniform": "l1"}
_STYLE = {
    "font.size": 7,
    "axes.titlesize": 8,
    "axes.labelsize": 7,
    "legend.fontsize": 6,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "lines.linewidth": 1.2,
    "pdf.fonttype": 42,  # embed TrueType: editable text, accepted by publishers
}


def _norm_of(results) -> str | None:
    """The common norm ('l2' or 'l1') from meta['norm'] or meta['noise'], or None if unknown or mixed."""
    norms = {run.meta.get("norm") or _NORMS.get(str(run.meta.get("noise", "")).lower()) for run in results}
    return norms.pop() if len(norms) == 1 else None


def _default_max_radius(results, proxy: bool) -> float:
    """5% beyond the largest finite certified radius over all runs (1.0 when nothing is certified)."""
    largest = 0.0
    for run in results:
        radius = np.asarray(run.radius_proxy if proxy else run.radius, dtype=np.float64)
        certified = radius[(run.correct == 1) & np.isfinite(radius)]
        if certified.size:
            largest = max(largest, float(certified.max()))
    return 1.05 * largest if largest > 0 else 1.0


def plot_certified_accuracy(
    results: Sequence, path_stem: str | os.PathLike, *, proxy: bool = False, max_radius: float | None = None
) -> list[Path]:
    """Certified accuracy vs radius (or proxy radius), one line per run; saved as PATH_STEM.png and .pdf.

    Parameters
    ----------
    results : sequence of report.Results
        The runs; each line is labelled with the run's name.
    path_stem : path without suffix
        Where to write; ".png" (300 dpi) and ".pdf" are appended. Parent folders are created.
    proxy : bool
        Use radius_proxy (the radius of the l_p ball with the certified region's volume).
    max_radius : float, optional
        Right end of the radius axis; default 5% beyond the largest certified radius.

    Returns
    -------
    list of Path: the PNG and the PDF.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = list(results)
    if not results:
        raise InvalidParameterError("no runs to plot; pass at least one Results")
    radii = fine_grid(_default_max_radius(results, proxy) if max_radius is None else max_radius)
    norm = _norm_of(results)
    unit = f"({norm}, input units)" if norm else "(input units)"
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    with rc_context(_STYLE):
        fig = Figure(figsize=COLUMN_FIGSIZE)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        styles = cycle(["-", "--", "-.", ":"])
        for run in results:
            radius = run.radius_proxy if proxy else run.radius
            ax.plot(radii, certified_accuracy(radius, run.correct, radii), next(styles), label=run.name)
        ax.set_xlim(0.0, radii[-1])
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(f"proxy radius {unit}" if proxy else f"radius {unit}")
        ax.set_ylabel("certified accuracy")
        ax.set_title("Certified accuracy vs proxy radius" if proxy else "Certified accuracy vs radius")
        ax.grid(True, linewidth=0.3, alpha=0.5)
        ax.legend(loc="upper right", frameon=False)
        fig.tight_layout(pad=0.3)
        fig.savefig(paths[0], dpi=300)
        fig.savefig(paths[1])
    return paths
