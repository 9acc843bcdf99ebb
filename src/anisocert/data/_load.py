"""`load_data`: a data-set spec (``name`` or ``name:ARG``) to its loader (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidParameterError, UnknownNameError
from ._dataset import Dataset
from ._embedded import load_band, load_digits, load_moons
from ._images import load_cifar10, load_imagenet
from ._mnist import load_mnist
from ._npz import load_npz

__all__ = ["DATA_SPECS", "SPLITS", "load_data"]


SPLITS = ("test", "train")
DATA_SPECS = ("digits", "mnist", "moons", "band", "npz:PATH", "cifar10:ROOT", "imagenet:ROOT")


def load_data(spec: str, split: str = "test") -> Dataset:
    """Load a data set from its spec (see the docstring of the package, anisocert.data).

    Parameters
    ----------
    spec : str
        ``digits``, ``mnist``, ``moons``, ``band``, ``npz:PATH``, ``cifar10:ROOT`` or ``imagenet:ROOT``.
    split : {"test", "train"}

    Raises
    ------
    UnknownNameError
        An unknown data set name (the choices are listed).
    DataLoadError
        Missing or malformed files (the message names the path and the fix).
    """
    if split not in SPLITS:
        raise InvalidParameterError(f"split={split!r} must be 'test' or 'train'")
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(f"data={spec!r} must be one of: {', '.join(DATA_SPECS)}")
    name, _, arg = spec.strip().partition(":")
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown data set {spec!r}; choose one of: {', '.join(DATA_SPECS)}")
    needs_arg = name in ("npz", "cifar10", "imagenet")
    if needs_arg and not arg:
        raise InvalidParameterError(
            f"data={spec!r} needs a path: {name}:{'PATH' if name == 'npz' else 'ROOT'}"
        )
    if not needs_arg and arg:
        raise InvalidParameterError(f"data={spec!r}: {name} takes no argument; write {name}")
    return _LOADERS[name](spec.strip(), arg, split)


_LOADERS: dict[str, Callable[[str, str, str], Dataset]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "moons": load_moons,
    "band": load_band,
    "npz": load_npz,
    "cifar10": load_cifar10,
    "imagenet": load_imagenet,
}
