"""`anisocert report`: compare runs side by side (tables in Markdown and LaTeX, curves in PNG and PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import user_errors

Opt = typer.Option


def report(
    runs: Annotated[list[Path], typer.Argument(help="run directories or TSV files (Cohen or ANCER format)")],
    out: Annotated[Path | None, Opt(help="write report.md, report.tex and the curves here")] = None,
    grid: Annotated[
        str,
        Opt(
            help="auto (0 to the largest certified radius of the runs, in 6-10 round steps) | l2-cifar | "
            "l2-imagenet | l1 (the published grids of CIFAR-10, ImageNet and l1) | start:stop:step | a,b,c"
        ),
    ] = "auto",
    latex: Annotated[bool, Opt(help="also print the LaTeX tables")] = False,
    plots: Annotated[
        bool, Opt(help="draw certified-accuracy curves and the runtime chart (with --out)")
    ] = True,
) -> None:
    """Certified accuracy at each radius of GRID and ACR per run, the same at proxy radius for ANCER runs,
    and the runtime comparison (optimisation and certification time per input, proxy radius per second)."""
    from ..core.metrics import AUTO, resolve_grid
    from ..viz.plots import check_out_dir, runtime_summary
    from ..viz.report import load_all, summary_table, to_latex, to_markdown, write_report

    with user_errors():
        if out is not None:
            check_out_dir(out)
        if grid.strip() != AUTO:
            resolve_grid(grid)  # a bad grid fails before the runs are read
        results = load_all(runs)
        table = summary_table(results, grid)
        typer.echo(to_markdown(table))
        if any((r.radius_proxy != r.radius).any() for r in results):
            typer.echo("\nproxy radius:\n" + to_markdown(summary_table(results, grid, proxy=True)))
        runtime = runtime_summary(results)
        typer.echo("\nruntime per input:\n" + to_markdown(runtime))
        if latex:
            typer.echo("\n" + to_latex(table) + "\n" + to_latex(runtime))
        if out is not None:
            for path in write_report(results, out, grid=grid, plots=plots):
                typer.echo(f"wrote {path}")
