"""User-facing error types: one class per kind of mistake, all under AnisocertError.

The CLI catches only AnisocertError, prints its one-line message and exits with code 2;
anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

__all__ = [
    "AnisocertError",
    "InvalidParameterError",
    "InfeasibleBudgetError",
    "UnknownNameError",
    "InputError",
    "ModelLoadError",
    "DataLoadError",
    "RunStoreError",
]


class AnisocertError(Exception):
    """Base of every error caused by the user's input rather than by a bug."""


class InvalidParameterError(AnisocertError, ValueError):
    """A parameter has the wrong type or lies outside its allowed range."""


class InfeasibleBudgetError(InvalidParameterError):
    """(n, alpha) can never reach pA_lower >= 1/2, so no input could ever be certified."""


class UnknownNameError(InvalidParameterError, KeyError):
    """A name (noise, architecture, data set, method) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputError(AnisocertError, ValueError):
    """Inputs do not fit the model: shape, dtype, NaN/Inf or class count."""


class ModelLoadError(AnisocertError):
    """A model file is missing, unreadable, of another architecture, or a pickle that runs code."""


class DataLoadError(AnisocertError):
    """A data set is missing, unreadable or malformed."""


class RunStoreError(AnisocertError):
    """A run directory belongs to another configuration, or its store is corrupt."""


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when empty): for one-line error reports."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
