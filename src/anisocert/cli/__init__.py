"""The anisocert command line: one typer app, one module per command group.

Commands only parse, build a config, call one api function and print. User mistakes
(AnisocertError) print one line and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from .._allocator import keep_freed_memory
from ._common import user_errors
from .certify import certify, optimize
from .experiment import experiment
from .report import report
from .selftest import selftest
from .train import train
from .verify import verify
from .visualize import visualize

__all__ = ["app", "main", "user_errors"]


class _OneLineUsageErrors(TyperGroup):
    """Usage mistakes (a wrong type, an unknown option) are one line on stderr and exit 2, like
    every other user error, instead of click's usage block or rich's error panel.

    Help texts are shown as written: rich would read a '[...]' in them (an install hint such as
    anisocert[ray], a '[default: ...]' note) as a style tag and drop it, so they are escaped here.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _escape_help(self)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # `anisocert` alone: the help text
                err.show()
            else:
                ctx = getattr(err, "ctx", None)
                where = ctx.command_path if ctx is not None else "anisocert"
                message = " ".join(err.format_message().split())
                typer.echo(f"error: {message} (see `{where} --help`)", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _escape_help(command) -> None:
    """Escape rich markup in the help of a command, its parameters and its sub-commands (in place)."""
    if not typer.core.HAS_RICH:
        return
    from rich.markup import escape

    if command.help:
        command.help = escape(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        _escape_help(sub)


app = typer.Typer(
    name="anisocert",
    cls=_OneLineUsageErrors,
    help="Certify classifiers with randomized smoothing: isotropic and anisotropic (ANCER), l2 and l1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(certify)
app.command("optimize")(optimize)
app.command()(report)
app.command()(train)
app.command()(verify)
app.command()(experiment)
app.command()(visualize)
app.command()(selftest)


def main() -> None:
    """The console entry point: malloc keeps freed memory for the forward passes' reuse (issue 25)."""
    keep_freed_memory()
    app()
