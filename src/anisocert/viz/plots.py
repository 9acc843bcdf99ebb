"""Figures for reports: certified accuracy vs radius, one line per run; the runtime comparison (chart, table).

matplotlib is imported inside the functions and figures are drawn on the Agg canvas without pyplot, so
plotting works headless and never changes the caller's pyplot backend. Sizes suit a paper column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import numpy as np

from ..core.metrics import certified_accuracy, fine_grid
from ..errors import InvalidParameterError

__all__ = [
    "COLUMN_FIGSIZE",
    "check_out_dir",
    "plot_certified_accuracy",
    "plot_runtime",
    "runtime_quartiles",
    "runtime_summary",
]
__all__ += ["runtime_table", "save_figure"]

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


def check_out_dir(out, option: str = "--out") -> Path:
    """The folder to write figures and tables into; refused at once (before any work) when it, or a
    folder above it, is a file. The folder itself is created only when something is written."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise InvalidParameterError(f"{option} {out}: {path} is a file; give a folder")
            break
    return out


def _column_figure():
    """A one-column figure on the Agg canvas (no pyplot) and its axes; draw inside rc_context(_STYLE)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=COLUMN_FIGSIZE)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _runs_to_plot(results) -> list:
    """The runs as a list; none is refused with a one-line error."""
    results = list(results)
    if not results:
        raise InvalidParameterError("no runs to plot; pass at least one Results")
    return results


def save_figure(fig, path_stem) -> list[Path]:
    """PATH_STEM.png (300 dpi) and PATH_STEM.pdf; parent folders are created."""
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    return paths


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

    results = _runs_to_plot(results)
    radii = fine_grid(_default_max_radius(results, proxy) if max_radius is None else max_radius)
    norm = _norm_of(results)
    unit = f"({norm}, input units)" if norm else "(input units)"
    with rc_context(_STYLE):
        fig, ax = _column_figure()
        styles = cycle(["-", "--", "-.", ":"])
        for run in results:
            radius = run.radius_proxy if proxy else run.radius
            ax.plot(radii, certified_accuracy(radius, run.correct, radii), next(styles), label=run.name)
        ax.set_xlim(0.0, radii[-1])
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(f"proxy radius {unit}" if proxy else f"radius {unit}")
        ax.set_ylabel("certified accuracy (fraction of inputs)")
        ax.set_title("Certified accuracy vs proxy radius" if proxy else "Certified accuracy vs radius")
        ax.grid(True, linewidth=0.3, alpha=0.5)
        ax.legend(loc="upper right", frameon=False)
        fig.tight_layout(pad=0.3)
        return save_figure(fig, path_stem)


def _quartiles(values) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of the finite values; NaNs when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q25), float(q50), float(q75)


def runtime_quartiles(run) -> dict[str, tuple[float, float, float]]:
    """Per-input time quartiles of one run: {"optimisation": (q25, median, q75), "certification": ...}.

    Optimisation time is the ``opt_time`` column (0 when absent: fixed runs choose no theta), the
    certification time the ``time`` column; both in seconds per input.
    """
    opt = run.columns.get("opt_time", np.zeros(len(run)))
    return {"optimisation": _quartiles(opt), "certification": _quartiles(run.columns["time"])}


def plot_runtime(results: Sequence, path_stem: str | os.PathLike, *, log: bool | None = None) -> list[Path]:
    """Bar chart of the time per input per run: optimisation and certification, median with IQR whiskers.

    Parameters
    ----------
    results : sequence of report.Results
        The runs (one group of two bars each, labelled with the run's name); columns ``time`` and, when
        present, ``opt_time`` (seconds per input).
    path_stem : path without suffix
        Where to write; ".png" (300 dpi) and ".pdf" are appended. Parent folders are created.
    log : bool, optional
        Logarithmic time axis; by default when the largest positive median exceeds 30 times the
        smallest (zero bars, e.g. a fixed run's optimisation, are then not drawn).

    Returns
    -------
    list of Path: the PNG and the PDF.
    """
    from matplotlib import rc_context

    results = _runs_to_plot(results)
    stats = [runtime_quartiles(run) for run in results]
    with rc_context(_STYLE):
        fig, ax = _column_figure()
        _draw_time_bars(ax, stats)
        if log or (log is None and _wants_log_axis(stats)):
            ax.set_yscale("log")
        _label_runs(ax, [run.name for run in results])
        ax.set_xlabel("method (run)")
        ax.set_ylabel("time per input (s)")
        ax.set_title("Optimisation and certification time per input")
        ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
        ax.legend(loc="upper left", frameon=False)
        fig.tight_layout(pad=0.3)
        return save_figure(fig, path_stem)


def _wants_log_axis(stats) -> bool:
    """Whether the largest positive median time exceeds 30 times the smallest (zero bars aside)."""
    medians = np.array([[s[k][1] for k in ("optimisation", "certification")] for s in stats])
    positive = medians[np.isfinite(medians) & (medians > 0)]
    return positive.size > 1 and positive.max() > 30 * positive.min()


def _draw_time_bars(ax, stats, width: float = 0.38) -> None:
    """Two bars per run (optimisation, certification) at x = 0, 1, ...: the median, IQR whiskers."""
    x = np.arange(len(stats))
    for j, (kind, color, hatch) in enumerate(
        (("optimisation", "tab:orange", ""), ("certification", "tab:blue", "//"))
    ):
        q = np.array([s[kind] for s in stats])  # (runs, 3)
        heights = np.nan_to_num(q[:, 1])
        spread = np.nan_to_num(np.stack([q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]]))
        ax.bar(
            x + (j - 0.5) * width,
            heights,
            width,
            yerr=spread,
            capsize=2,
            color=color,
            hatch=hatch,
            edgecolor="white",
            linewidth=0.3,
            error_kw={"elinewidth": 0.7, "capthick": 0.7},
            label=f"{kind} (median, IQR)",
        )


def _label_runs(ax, names: list[str]) -> None:
    """The run names under their bars, slanted when more than two would crowd the axis."""
    ax.set_xticks(np.arange(len(names)), names)
    if len(names) > 2:
        ax.tick_params(axis="x", labelrotation=20)
        for label in ax.get_xticklabels():
            label.set(ha="right", rotation_mode="anchor")


def _reference(results) -> int:
    """Index of the run to compare with: the first fixed run (meta config method), else the first run."""
    for j, run in enumerate(results):
        method = (run.meta.get("config") or {}).get("method", run.meta.get("method"))
        if method == "fixed":
            return j
    return 0


def runtime_summary(results):
    """tables.Table of the runtime comparison, one row per run (seconds per input).

    Columns: optimisation time median and IQR (``opt_time``, 0 when absent), certification time
    median and IQR (``time``), ACR proxy (mean of radius_proxy * correct over all inputs), then the run
    against the reference (the first fixed run, else the first run): its mean total time per input and
    its ACR proxy, each as a ratio to the reference's. (A gain per extra second, as before, had no value
    where a run was not slower than the reference, e.g. an ancer run reusing an isotropic run's sigma_x
    under another load: it showed "-".)
    """
    from ..core.metrics import average_certified_radius
    from .tables import Table

    results = list(results)
    if not results:
        raise InvalidParameterError("no runs given; pass at least one TSV file or run directory")
    ref = _reference(results)

    def totals(run):
        opt = run.columns.get("opt_time", np.zeros(len(run))).astype(np.float64)
        acr = average_certified_radius(run.radius_proxy, run.correct)
        return acr, float(np.mean(opt + run.columns["time"].astype(np.float64)))

    def ratio(value: float, of: float) -> float:
        return value / of if of > 0 else np.nan

    ref_acr, ref_time = totals(results[ref])
    rows = []
    for run in results:
        q = runtime_quartiles(run)
        acr, total = totals(run)
        opt, cert = q["optimisation"], q["certification"]
        rows.append([opt[1], opt[2] - opt[0], cert[1], cert[2] - cert[0], acr, ratio(total, ref_time)])
        rows[-1].append(ratio(acr, ref_acr))
    name = results[ref].name
    return Table(
        rows=[run.name for run in results],
        columns=[
            "opt time median (s)",
            "opt time IQR (s)",
            "cert time median (s)",
            "cert time IQR (s)",
            "ACR proxy",
            f"time / input vs {name}",
            f"ACR proxy vs {name}",
        ],
        values=np.array(rows, dtype=np.float64).reshape(len(results), 7),
        formats=[".3g"] * 4 + [".3f", ".2f", ".2f"],
        best=[None] * 4 + ["max", None, "max"],
        corner="method",
        caption="Time per input (median and interquartile range, seconds), the average certified proxy "
        f"radius, and each run's mean time per input (optimisation + certification) and ACR proxy as "
        f"ratios to {name}'s.",
    )


def runtime_table(results) -> str:
    """The runtime comparison (runtime_summary) as a GitHub Markdown table."""
    from .tables import to_markdown

    return to_markdown(runtime_summary(results))
