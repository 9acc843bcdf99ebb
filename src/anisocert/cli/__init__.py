"""The anisocert command line: one typer app, one module per command group.

Commands only parse, build a config, call one api function and print. User mistakes
(AnisocertError) print one line and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

import typer

from ._common import user_errors
from .certify import certify
from .experiment import experiment
from .report import report
from .selftest import selftest
from .train import train
from .verify import verify
from .visualize import visualize

__all__ = ["app", "main", "user_errors"]

app = typer.Typer(
    name="anisocert",
    help="Certify classifiers with randomized smoothing: isotropic and anisotropic (ANCER), l2 and l1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(certify)
app.command()(report)
app.command()(train)
app.command()(verify)
app.command()(experiment)
app.command()(visualize)
app.command()(selftest)


def main() -> None:
    app()
