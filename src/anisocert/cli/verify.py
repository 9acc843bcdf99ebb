"""`anisocert verify`: an independent all-pairs check of a run's certified regions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import user_errors


def verify(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `anisocert certify`")],
    raw: Annotated[bool, typer.Option(help="also check the certificates before memory")] = True,
) -> None:
    """Exit 1 if two stored regions with different predictions intersect; print how many memory changed."""
    from ..run.runner import verify_run

    with user_errors():
        outcome = verify_run(run_dir, raw=raw)
    typer.echo(outcome.text())
    for i, j in outcome.conflicts[:20]:
        typer.echo(f"conflict: inputs {i} and {j}", err=True)
    if outcome.conflicts:
        raise typer.Exit(code=1)
