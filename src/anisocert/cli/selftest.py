"""`anisocert selftest`: measure the guarantees on base classifiers with known smoothed probabilities."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ._common import user_errors


def selftest(
    quick: Annotated[
        bool, typer.Option("--quick", help="the CI-sized run: under a minute on 2 cores (default: full run)")
    ] = False,
    seed: Annotated[int, typer.Option(help="seeds every noise stream and random case (>= 0)")] = 0,
) -> None:
    """Measure false-certification rates, radius tightness and the geometry behind memory; exit 1 on a violation."""
    from ..selftest import run_selftest

    start = time.perf_counter()
    with user_errors():
        results = run_selftest(quick=quick, seed=seed)
    _print_table(results, time.perf_counter() - start)
    if not all(r.passed for r in results):
        raise typer.Exit(code=1)


def _print_table(results, seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"anisocert selftest: {len(results)} checks in {seconds:.1f} s")
    table.add_column("#", justify="right")
    table.add_column("check", overflow="fold")
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("bound", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for number, r in enumerate(results, 1):
        verdict = "[green]PASS[/green]" if r.passed else "[bold red]FAIL[/bold red]"
        table.add_row(str(number), escape(r.name), f"{r.measured:.4g}", f"{r.op} {r.bound:.4g}", verdict)
    console = Console()
    console.print(table)
    for number, r in enumerate(results, 1):
        console.print(f"{number:>2}. {escape(r.detail)} ({r.seconds:.1f} s)", highlight=False)
    failed = [r.name for r in results if not r.passed]
    console.print(f"[bold red]{len(failed)} violation(s)[/bold red]" if failed else "no violation")
