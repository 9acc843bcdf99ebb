"""Shared CLI plumbing: turning user errors into one line and exit code 2."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer

from ..errors import AnisocertError


@contextmanager
def user_errors():
    """Print an AnisocertError as one line on stderr and exit 2; Ctrl-C exits 130 after cleanup."""
    try:
        yield
    except AnisocertError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished inputs are stored; run the same command again to resume", err=True)
        raise typer.Exit(code=130) from None


def command_line() -> str:
    return " ".join(["anisocert", *sys.argv[1:]])
