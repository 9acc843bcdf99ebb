"""Views of certification runs: tables of runs (viz/results.py reads them), Markdown and LaTeX, the report.

A run is a ``Results``: one array per TSV column (one entry per evaluated input) and free-form metadata.
Cohen's logs (``idx label predict radius correct time``) and ANCER's (``... radius radius_proxy correct
min_sigma time``) are both read; ``radius_proxy`` defaults to ``radius``. Metrics come from
``anisocert.core.metrics`` at full precision; only the rendered text is rounded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.certificates import MEMORY_CHANGED
from ..core.metrics import AUTO, average_certified_radius, certified_accuracy, resolve_grid
from ..errors import InvalidParameterError
from .results import REQUIRED_COLUMNS, Results, load_all, load_results, read_tsv, write_tsv
from .tables import Table, latex_escape, to_latex, to_markdown

__all__ = [
    "REQUIRED_COLUMNS",
    "Results",
    "Table",
    "read_tsv",
    "write_tsv",
    "load_results",
    "load_all",
    "summary_table",
    "side_by_side_table",
    "to_markdown",
    "to_latex",
    "cohen_table",
    "write_report",
]


# ---------------------------------------------------------------------------------------------- tables


def _grid_label(radius: float) -> str:
    return f"r = {radius:g}"


def certified_radii(results: Sequence[Results], *, proxy: bool = False) -> np.ndarray:
    """The radii (or proxy radii) of the correct inputs of every run: what grid 'auto' is fitted to."""
    parts = [(r.radius_proxy if proxy else r.radius)[r.correct.astype(bool)] for r in results]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def summary_table(results: Sequence[Results], grid, *, proxy: bool = False) -> Table:
    """Rows = runs; columns = n, certified accuracy at each R of grid, ACR.

    With proxy=True the certified accuracy is on radius_proxy and the columns end with ACR and the average
    certified proxy radius ("ACR proxy"). grid 'auto' is fitted to the radii tabulated (metrics.auto_grid).
    """
    grid = resolve_grid(grid, radii=certified_radii(results, proxy=proxy))
    columns = ["n", *(_grid_label(r) for r in grid), "ACR"] + (["ACR proxy"] if proxy else [])
    values = []
    for run in results:
        radius = run.radius_proxy if proxy else run.radius
        row = [
            len(run),
            *certified_accuracy(radius, run.correct, grid),
            average_certified_radius(run.radius, run.correct),
        ]
        if proxy:
            row.append(average_certified_radius(run.radius_proxy, run.correct))
        values.append(row)
    what = "proxy radius" if proxy else "radius"
    return Table(
        rows=[run.name for run in results],
        columns=columns,
        values=np.array(values, dtype=np.float64).reshape(len(results), len(columns)),
        formats=["d"] + [".3f"] * (len(columns) - 1),
        best=[None] + ["max"] * (len(columns) - 1),
        caption=f"Certified accuracy at {what} r (fraction of all n inputs; abstentions count as 0) and ACR.",
    )


def _method(run: Results) -> str:
    """The run's method: its ``method`` column (certify.tsv), else meta["method"] or meta["config"]["method"]."""
    if "method" in run.columns and len(run):
        return str(run.columns["method"][0])
    config = run.meta.get("config")
    return str(run.meta.get("method") or (config.get("method") if isinstance(config, dict) else "") or "")


def _kept_share(run: Results) -> float:
    """ancer: the share of inputs whose anisotropic certificate was reported (not fallen back to the
    isotropic one; the ``fallback`` column); NaN for other methods or without the column."""
    if _method(run) != "ancer" or "fallback" not in run.columns:
        return math.nan
    return float(np.mean(run.columns["fallback"].astype(np.int64) == 0))


def _proxy_gain(run: Results, isotropic: Results | None) -> float:
    """The run's ACR proxy over the isotropic run's ACR, on the inputs both runs hold; NaN without one."""
    if isotropic is None:
        return math.nan
    common = np.intersect1d(run.columns["idx"], isotropic.columns["idx"])
    if common.size == 0:
        return math.nan
    mine, theirs = np.isin(run.columns["idx"], common), np.isin(isotropic.columns["idx"], common)
    base = average_certified_radius(isotropic.radius[theirs], isotropic.correct[theirs])
    gain = average_certified_radius(run.radius_proxy[mine], run.correct[mine])
    return gain / base if base > 0 else math.nan


def _side_by_side_row(run: Results, isotropic: Results | None = None) -> list[float]:
    """n, ACR, ACR proxy, fraction changed by memory, median optimisation time, mean certification time,
    mean estimation draws (NaN for a TSV without the draws column), proxy gain over the isotropic run,
    share of anisotropic certificates kept."""
    nan = math.nan
    if "memory_status" in run.columns:
        changed = float(np.mean(np.isin(run.columns["memory_status"].astype(str), MEMORY_CHANGED)))
    else:
        changed = float(run.meta.get("memory_changed", nan))
    if "opt_time" in run.columns:
        opt_time = float(np.median(run.columns["opt_time"].astype(np.float64)))
    else:
        opt_time = float(run.meta.get("opt_time", nan))
    return [
        len(run),
        average_certified_radius(run.radius, run.correct),
        average_certified_radius(run.radius_proxy, run.correct),
        changed,
        opt_time,
        float(np.mean(run.columns["time"])),
        float(np.mean(run.columns["draws"])) if "draws" in run.columns else nan,
        _proxy_gain(run, isotropic),
        _kept_share(run),
    ]


def side_by_side_table(results: Sequence[Results]) -> Table:
    """Per run: n, ACR, ACR proxy, share changed by memory, median optimisation and mean certification time,
    mean estimation draws, proxy gain over the isotropic run, share of anisotropic certificates kept.

    The memory fraction comes from a ``memory_status`` column (share of records shrunk, abstained inside a foreign region or adopted), else
    meta["memory_changed"]; the optimisation time from an ``opt_time`` column (median, seconds), else
    meta["opt_time"]; certification time is the mean of the ``time`` column (seconds per input); draws the
    mean of the ``draws`` column (estimation draws per input; sequential runs spend fewer than N). The proxy
    gain is the run's ACR proxy over the ACR of the first isotropic run among ``results`` (method column or
    meta), on the inputs both runs hold; NaN when there is none. The kept share (ancer only) is the share of
    inputs whose ``fallback`` column is 0: the anisotropic certificate was reported.
    """
    isotropic = next((run for run in results if _method(run) == "isotropic"), None)
    columns = [
        "n",
        "ACR",
        "ACR proxy",
        "memory changed",
        "opt time (s, median)",
        "cert time (s/input)",
        "draws (mean/input)",
        "proxy / iso ACR",
        "aniso kept",
    ]
    return Table(
        rows=[run.name for run in results],
        columns=columns,
        values=np.array([_side_by_side_row(run, isotropic) for run in results], dtype=np.float64).reshape(
            -1, len(columns)
        ),
        formats=["d", ".3f", ".3f", ".3f", ".3g", ".3g", ".0f", ".3f", ".2f"],
        best=[None, "max", "max", None, None, None, None, "max", None],
        caption="Side by side: average certified radius and proxy radius, share of certificates changed by "
        "memory, time and draws per input, the proxy radius over the isotropic run's radius, and the share "
        "of anisotropic certificates kept (not fallen back to the isotropic one).",
    )


def cohen_table(results: Sequence[Results], grid, labels: Sequence[str] | None = None) -> str:
    """Cohen et al.'s Markdown table (analysis/markdown/vary_noise_*): certified accuracy at each r of grid.

    Same text as their analyze.py: header ``r = {:.3}``, values with 2 decimals, the first largest entry
    of each column (compared at full precision) followed by ``<b>*</b>``, row labels ``<b> label </b>``.
    labels default to the run names.
    """
    grid = resolve_grid(grid, radii=certified_radii(results))
    labels = [run.name for run in results] if labels is None else list(labels)
    if len(labels) != len(results):
        raise InvalidParameterError(
            f"labels has {len(labels)} entries for {len(results)} runs; give one per run"
        )
    accuracy = np.array([certified_accuracy(run.radius, run.correct, grid) for run in results])
    best = accuracy.argmax(axis=0)  # first row among ties, as numpy's argmax
    text = "|  | " + "".join(f"r = {r:.3} |" for r in grid) + "\n"
    text += "| --- | " + " --- |" * len(grid) + "\n"
    for i, label in enumerate(labels):
        marks = ["<b>*</b>" if best[j] == i else "" for j in range(len(grid))]
        text += f"<b> {label} </b>| " + "".join(
            f"{v:.2f}{m} |" for v, m in zip(accuracy[i], marks, strict=True)
        )
        text += "\n"
    return text


# ---------------------------------------------------------------------------------------------- report


def _differs(run: Results) -> bool:
    return not np.array_equal(run.radius_proxy, run.radius.astype(np.float64))


def _runs_section(results: Sequence[Results]) -> list[str]:
    lines = ["## Runs", ""]
    for run in results:
        scalars = {
            k: v for k, v in run.meta.items() if isinstance(v, str | int | float | bool) and k != "label"
        }
        extra = ", ".join(f"{k}={v}" for k, v in scalars.items())
        lines.append(
            f"- **{run.name}**: {len(run)} inputs from `{run.source}`" + (f" ({extra})" if extra else "")
        )
    return lines + [""]


def _tables(results: list[Results], grid) -> list[tuple[str, object]]:
    """(title, table) of the report: certified accuracy (radius, and proxy radius where some run's proxy
    radius differs), the runs side by side, the runtime."""
    from .plots import runtime_summary

    tables = [("Certified accuracy (radius)", summary_table(results, grid))]
    if any(_differs(run) for run in results):
        tables.append(("Certified accuracy (proxy radius)", summary_table(results, grid, proxy=True)))
    tables.append(("Side by side", side_by_side_table(results)))
    tables.append(("Runtime", runtime_summary(results)))
    return tables


def _markdown(results: list[Results], tables, figures: list[str]) -> str:
    lines = ["# Certification report", "", *_runs_section(results)]
    for title, table in tables:
        lines += [f"## {title}", "", table.caption, "", to_markdown(table)]
    lines += [f"![{stem}]({stem}.png)\n" for stem in figures]
    return "\n".join(lines)


def _latex(tables, figures: list[str]) -> str:
    lines = ["% anisocert report: \\input this file; needs \\usepackage{booktabs,graphicx}", ""]
    for _, table in tables:
        lines += ["\\begin{table}[t]", "\\centering", "\\small", to_latex(table).rstrip("\n")]
        lines += [f"\\caption{{{latex_escape(table.caption)}}}", "\\end{table}", ""]
    for stem in figures:
        lines += [
            "\\begin{figure}[t]",
            "\\centering",
            f"\\includegraphics[width=\\columnwidth]{{{stem}.pdf}}",
        ]
        lines += ["\\end{figure}", ""]
    return "\n".join(lines)


def write_report(
    results: Sequence[Results],
    out_dir: str | os.PathLike,
    *,
    grid,
    formats: Sequence[str] = ("md", "tex"),
    plots: bool = True,
) -> list[Path]:
    """Write report.md and/or report.tex (tables) and the certified-accuracy plots into out_dir.

    grid is an array of radii or a name/range accepted by ``metrics.resolve_grid`` ("auto", "l2-cifar",
    "0:1.5:0.25"); "auto" is fitted to each table's radii. The proxy-radius table and plot are added when some run's radius_proxy differs from
    its radius. Returns the paths written.
    """
    results = list(results)
    if not results:
        raise InvalidParameterError("no runs given; pass at least one TSV file or run directory")
    unknown = set(formats) - {"md", "tex"}
    if unknown:
        raise InvalidParameterError(
            f"formats={tuple(formats)!r} has unknown {sorted(unknown)}; use 'md' and/or 'tex'"
        )
    from .plots import check_out_dir

    if not (isinstance(grid, str) and grid.strip() == AUTO):
        grid = resolve_grid(grid)  # a bad grid fails before anything is written
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = _tables(results, grid)
    proxy = any(_differs(run) for run in results)
    written: list[Path] = []
    figures: list[str] = []
    if plots:
        from .plots import plot_certified_accuracy, plot_runtime

        figures = ["certified_accuracy", "certified_accuracy_proxy"] if proxy else ["certified_accuracy"]
        for stem in figures:
            written += plot_certified_accuracy(results, out_dir / stem, proxy=stem.endswith("proxy"))
        written += plot_runtime(results, out_dir / "runtime")
        figures.append("runtime")
    if "md" in formats:
        written.append(out_dir / "report.md")
        written[-1].write_text(_markdown(results, tables, figures))
    if "tex" in formats:
        written.append(out_dir / "report.tex")
        written[-1].write_text(_latex(tables, figures))
    return written
