"""Model registry (timm style): plain dicts, `register_model`, `list_models`, `is_model`, `create_model`.

An entry point is a function `name(num_classes=None, **kwargs) -> nn.Module` decorated with
`@register_model`; the function's name is the architecture's name. Every model it returns carries:

- ``arch``: the registered name, and ``arch_options``: the options given to `create_model` (except mean/std),
- ``outputs``: ``"logits"`` (all registered architectures output logits),
- ``num_classes``: the number of outputs,
- ``input_shape``: the shape D of one input, e.g. (3, 32, 32),
- ``normalisation``: ``{"mean": [...], "std": [...]}``, the per-channel statistics of the first layer
  (inputs are pixels in [0, 1]; noise is added in that space, before the normalisation),
- ``normalisation_keys``: the state-dict keys holding those statistics (checkpoints of the public code
  bases do not store them, so the loaders fall back to the architecture's defaults).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameterError, UnknownNameError

__all__ = [
    "register_model",
    "list_models",
    "is_model",
    "model_entrypoint",
    "create_model",
    "Normalize",
    "MLP2d",
    "finish_model",
    "float32_list",
    "InputClamp",
]

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register `fn` under its own name; a second registration of the same name is a bug."""
    name = fn.__name__
    if name in _model_entrypoints:
        raise RuntimeError(f"model {name!r} is registered twice")
    _model_entrypoints[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered architectures that match the shell-style `pattern`."""
    return sorted(name for name in _model_entrypoints if fnmatch.fnmatchcase(name, pattern))


def is_model(name: str) -> bool:
    """Whether `name` is a registered architecture."""
    return name in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entry point of `name`; UnknownNameError (listing the choices) if it is not registered."""
    if name not in _model_entrypoints:
        raise UnknownNameError(f"unknown architecture {name!r}; choose one of: {', '.join(list_models())}")
    return _model_entrypoints[name]


def create_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build a registered architecture with random weights, in training mode, on the CPU.

    Parameters
    ----------
    name : str
        A name from `list_models()`, e.g. ``"cifar_resnet110"``.
    num_classes : int, optional
        Number of outputs; the architecture's default (10 for CIFAR-10 and digits, 1000 for
        ImageNet, 2 for the 2-D toy sets) when None.
    **kwargs
        Architecture options named in its entry point, e.g. ``mean=``/``std=`` to change the
        normalisation or ``hidden=`` for ``mlp2d``. Unknown options raise InvalidParameterError.

    Examples
    --------
    >>> model = create_model("mlp2d")
    >>> model(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """
    fn = model_entrypoint(name)
    accepted = [p for p in inspect.signature(fn).parameters if p != "num_classes"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InvalidParameterError(
            f"{name} has no option {', '.join(unknown)}; its options are: {', '.join(accepted) or 'none'}"
        )
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise InvalidParameterError(f"num_classes={num_classes!r} must be an integer >= 1")
    model = fn(num_classes=num_classes, **kwargs)
    model.arch = name
    # Options that change the shapes, recorded by save_checkpoint (mean/std are saved as buffers).
    model.arch_options = {k: v for k, v in kwargs.items() if k not in ("mean", "std")}
    return model


class Normalize(nn.Module):
    """(x - mean) / std per channel (dim 1): the first layer of every model; x is in [0, 1] pixel space.

    mean and std are buffers (saved with the weights); for inputs (B, C, H, W) they have shape
    (1, C, 1, 1), for vectors (B, C) shape (1, C).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], spatial: bool = True):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32, device="cpu").reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32, device="cpu").reshape(-1)
        if mean_t.shape != std_t.shape or not bool((std_t > 0).all()):
            raise InvalidParameterError(
                f"normalisation mean={mean} std={std}: need equal lengths and std > 0"
            )
        shape = (1, -1, 1, 1) if spatial else (1, -1)
        self.register_buffer("mean", mean_t.reshape(shape))
        self.register_buffer("std", std_t.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class InputClamp(nn.Module):
    """Clamp inputs to the data's range [low, high] (default [0, 1]) before the first layer: an optional input
    stage (architecture option ``clamp_input``, off by default). It bounds what noise on one pixel can do to
    the network: a pixel's value, noisy or not, stays within the range of clean pixels, so a very large theta
    on a pixel only turns it into (at most) a pixel the network has seen. No parameters, no buffers."""

    def __init__(self, low: float = 0.0, high: float = 1.0):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


def input_stage(clamp_input: bool) -> nn.Module:
    """The input stage of an architecture with the ``clamp_input`` option: InputClamp or the identity."""
    if not isinstance(clamp_input, bool):
        raise InvalidParameterError(f"clamp_input={clamp_input!r} must be True or False")
    return InputClamp() if clamp_input else nn.Identity()


def float32_list(values) -> list[float]:
    """Values as stored in float32 buffers, written in their shortest form (0.2, not 0.20000000298...)."""
    return [
        float(str(np.float32(v)))
        for v in torch.as_tensor(values, dtype=torch.float32, device="cpu").flatten()
    ]


def finish_model(
    model: nn.Module,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    mean: Sequence[float],
    std: Sequence[float],
    normalisation_keys: tuple[str, str] = ("normalize.mean", "normalize.std"),
) -> nn.Module:
    """Attach the attributes every registered model carries (see the module docstring)."""
    model.outputs = "logits"
    model.num_classes = int(num_classes)
    model.input_shape = tuple(int(d) for d in input_shape)
    model.normalisation = {"mean": float32_list(mean), "std": float32_list(std)}
    model.normalisation_keys = normalisation_keys
    return model


# Small architectures for the embedded data sets (kept here: the digits CNN itself lives in digits.py).


class LinearHead(nn.Module):
    """The timm-style interface shared by models whose classifier is ``self.fc`` on pooled features:
    forward = forward_head(forward_features(x)); reset_classifier replaces fc."""

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, num_classes)
        self.num_classes = num_classes


class MLP2d(LinearHead):
    """Normalize -> (Linear -> ReLU) x depth -> Linear: logits for 2-D toy inputs of shape (B, 2)."""

    def __init__(
        self, num_classes: int = 2, hidden: int = 64, depth: int = 2, mean=(0.0, 0.0), std=(1.0, 1.0)
    ):
        super().__init__()
        self.normalize = Normalize(mean, std, spatial=False)
        layers: list[nn.Module] = []
        width = len(mean)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


@register_model
def mlp2d(num_classes: int | None = None, hidden: int = 64, depth: int = 2, mean=(0.0, 0.0), std=(1.0, 1.0)):
    """A small MLP for the 2-D toy sets (moons, band); identity normalisation unless mean/std are given."""
    num_classes = num_classes or 2
    model = MLP2d(num_classes, hidden, depth, mean, std)
    return finish_model(model, num_classes=num_classes, input_shape=(2,), mean=mean, std=std)


@register_model
def digits_cnn(
    num_classes: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    clamp_input: bool = False,
):
    """The lead's DigitsCNN (models/digits.py) for the 8x8 digits, inputs (B, 1, 8, 8) in [0, 1].

    clamp_input: clamp the (noisy) input to [0, 1] before the normalisation (InputClamp; default off)."""
    from .digits import DIGITS_MEAN, DIGITS_STD, DigitsCNN

    num_classes = num_classes or 10
    mean = DIGITS_MEAN if mean is None else float(mean)
    std = DIGITS_STD if std is None else float(std)
    model = DigitsCNN(num_classes, mean, std)
    model.input_stage = input_stage(clamp_input)
    return finish_model(
        model,
        num_classes=num_classes,
        input_shape=(1, 8, 8),
        mean=[mean],
        std=[std],
        normalisation_keys=("mean", "std"),
    )
