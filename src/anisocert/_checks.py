"""Boundary validators: called once by config and api, so inner modules can trust their inputs."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from .errors import InfeasibleBudgetError, InputError, InvalidParameterError, UnknownNameError

__all__ = [
    "check_int",
    "check_real",
    "check_alpha",
    "check_budget",
    "check_theta",
    "check_inputs",
    "smallest_certifying_n",
    "check_device",
    "check_choice",
]


def check_int(name: str, value, *, min_value: int = 1, max_value: int | None = None, hint: str = "") -> int:
    """An integer >= min_value (and <= max_value when given); bools and floats are refused: n=1e5 must
    be written 100000."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParameterError(f"{name}={value!r} must be an integer >= {min_value}{hint}")
    if value < min_value:
        raise InvalidParameterError(f"{name}={value} must be an integer >= {min_value}{hint}")
    if max_value is not None and value > max_value:
        raise InvalidParameterError(f"{name}={value} must be an integer <= {max_value}{hint}")
    return int(value)


def check_real(name: str, value, *, low: float = 0.0, high: float = math.inf, hint: str = "") -> float:
    """A finite real strictly inside (low, high)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidParameterError(f"{name}={value!r} must be a finite number in ({low}, {high}){hint}")
    if not low < value < high:
        raise InvalidParameterError(f"{name}={value} must be in ({low}, {high}){hint}")
    return float(value)


def check_alpha(alpha) -> float:
    """The one-sided failure probability per input, in (0, 1)."""
    return check_real("alpha", alpha, low=0.0, high=1.0, hint="; the usual value is 0.001")


def smallest_certifying_n(alpha: float) -> int:
    """Smallest n with pA_lower(nA = n) = alpha ** (1 / n) >= 1/2, i.e. n >= log2(1 / alpha)."""
    n = max(1, math.ceil(math.log(alpha) / math.log(0.5)))
    while alpha ** (1.0 / n) < 0.5:  # guard the float edge of the ceiling
        n += 1
    return n


def check_budget(n0, n, alpha) -> tuple[int, int, float]:
    """Validate (n0, n, alpha) and refuse an n that could never certify any input."""
    n0 = check_int("n0", n0, hint="; the usual value is 100")
    n = check_int("n", n, hint="; the usual value is 100000")
    alpha = check_alpha(alpha)
    need = smallest_certifying_n(alpha)
    if n < need:
        raise InfeasibleBudgetError(
            f"n={n} can never certify at alpha={alpha}: even if every draw agrees, pA_lower = "
            f"{alpha ** (1.0 / n):.4f} < 1/2; use n >= {need} (the usual value is 100000)"
        )
    return n0, n, alpha


def check_theta(theta, name: str = "sigma") -> torch.Tensor:
    """theta (a scalar sigma or a per-dimension tensor) must be finite and > 0."""
    t = torch.as_tensor(theta, dtype=torch.float32)
    if t.numel() == 0 or not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
        shown = float(t.min()) if t.numel() and t.numel() > 1 else theta
        raise InvalidParameterError(
            f"{name}={shown!r} must be finite and > 0 (standard deviation for gaussian noise, "
            "half-width for uniform); e.g. 0.25"
        )
    return t


def check_inputs(x: torch.Tensor, *, name: str = "inputs") -> torch.Tensor:
    """Inputs must be a non-empty floating tensor (B, *D) with finite entries."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputError(f"{name} must have shape (B, *D) with B >= 1, got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0])
        raise InputError(f"{name} contain NaN or Inf (first at position {bad}); clean the data first")
    return x


def check_device(requested: str | None) -> torch.device:
    """The requested torch device if it exists here; else CUDA when present, else the CPU."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise InvalidParameterError(
            f"--device {requested!r} is not a device; use cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidParameterError(
                f"--device {requested}: no CUDA GPU is visible here; use --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise InvalidParameterError(
                f"--device {requested}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    elif device.type not in ("cpu", "mps", "xpu"):
        raise InvalidParameterError(f"--device {requested!r} is not supported; use cpu, cuda or cuda:N")
    return device


def check_choice(name: str, value, choices) -> str:
    """One of a fixed set of names."""
    if value not in choices:
        raise UnknownNameError(f"{name}={value!r} is unknown; choose one of {list(choices)}")
    return value
