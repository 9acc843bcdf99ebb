"""`Dataset` (labels in memory, inputs on demand), an in-memory one from arrays, and `select_indices`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..errors import InvalidParameterError

__all__ = ["Dataset", "in_memory", "select_indices"]


@dataclass(eq=False)
class Dataset:
    """Labels in memory and inputs on demand: ``get(indices)`` -> float32 tensor (k, *input_shape).

    Image sets are pixels in [0, 1] (``value_range``); the 2-D toy sets and npz data may lie anywhere
    (``value_range`` None). For cifar10/imagenet train splits, `get` applies random augmentation.
    """

    name: str
    spec: str
    split: str
    num_classes: int
    input_shape: tuple[int, ...]
    labels: np.ndarray
    value_range: tuple[float, float] | None = (0.0, 1.0)
    class_names: tuple[str, ...] | None = None
    _fetch: Callable[[np.ndarray], torch.Tensor] = field(default=None, repr=False)
    decoded: bool = False  # `get` decodes files or augments images: worth worker processes (iter_batches)
    levels: int | None = None  # the inputs' grid: every value is k / levels (the exact sampler's grid)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def get(self, indices) -> torch.Tensor:
        """Inputs at `indices` (an int, a sequence or an integer array), float32 of shape (k, *input_shape)."""
        idx = np.atleast_1d(np.asarray(indices))
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise InvalidParameterError(
                f"indices must be integers, got {np.asarray(indices).dtype} {idx.shape}"
            )
        idx = idx.astype(np.int64)
        bad = idx[(idx < 0) | (idx >= len(self))]
        if bad.size:
            raise InvalidParameterError(
                f"index {int(bad[0])} is out of range for {self.spec} {self.split} ({len(self)} inputs: 0..{len(self) - 1})"
            )
        out = self._fetch(idx)
        assert out.shape == (idx.size, *self.input_shape) and out.dtype == torch.float32
        return out

    def rounded_to_grid(self, levels: int) -> Dataset:
        """This data set with every input rounded to the grid k / levels (the exact sampler's --round), so
        that the certified centres, memory and verify all see the rounded inputs."""
        from ..core.exact import snap_to_grid

        fetch = self._fetch
        return replace(self, levels=levels, _fetch=lambda idx: snap_to_grid(fetch(idx), levels))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.spec!r}, split={self.split!r}, n={len(self)}, num_classes={self.num_classes}, "
            f"input_shape={self.input_shape})"
        )


def in_memory(
    name, spec, split, x: np.ndarray, y: np.ndarray, num_classes: int, value_range, levels: int | None = None
) -> Dataset:
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return Dataset(
        name=name,
        spec=spec,
        split=split,
        num_classes=int(num_classes),
        input_shape=tuple(inputs.shape[1:]),
        labels=np.ascontiguousarray(y, dtype=np.int64),
        value_range=value_range,
        levels=levels,
        _fetch=lambda idx: inputs[torch.from_numpy(idx)],
    )


def select_indices(n_total: int, *, skip: int = 1, max_count: int | None = None, indices=None) -> np.ndarray:
    """The indices to certify, int64: every `skip`-th of range(n_total) (0, skip, 2 skip, ...), at most
    `max_count` of them; or the explicit `indices` (in range, no duplicates, in the given order).

    Cohen et al.'s ``--skip 20`` on CIFAR-10 is ``select_indices(10000, skip=20)`` (500 inputs). Their
    ``--max`` bounds the index, whereas `max_count` bounds the number of inputs.
    """
    if isinstance(n_total, bool) or not isinstance(n_total, (int, np.integer)) or n_total < 0:
        raise InvalidParameterError(f"n_total={n_total!r} must be an integer >= 0")
    if indices is not None:
        if skip != 1 or max_count is not None:
            raise InvalidParameterError("give either indices or skip/max_count, not both")
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise InvalidParameterError(f"indices={indices!r} must be a non-empty list of integers")
        idx = idx.astype(np.int64)
        bad = idx[(idx < 0) | (idx >= n_total)]
        if bad.size:
            raise InvalidParameterError(
                f"index {int(bad[0])} is out of range: the data set has {n_total} inputs"
            )
        values, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise InvalidParameterError(f"indices repeat {values[counts > 1][:5].tolist()}; give each once")
        return idx
    if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 1:
        raise InvalidParameterError(
            f"skip={skip!r} must be an integer >= 1 (1 = every input, 20 = Cohen's CIFAR-10)"
        )
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, (int, np.integer)) or max_count < 1
    ):
        raise InvalidParameterError(f"max_count={max_count!r} must be an integer >= 1, or None for all")
    return np.arange(0, n_total, skip, dtype=np.int64)[:max_count]
