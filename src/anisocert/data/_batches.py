"""Reading a list of index batches in order, with worker processes for the sets that decode or augment."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import torch

from ..errors import InvalidParameterError
from ._dataset import Dataset

__all__ = ["default_workers", "iter_batches"]


def default_workers() -> int:
    """min(8, CPU count): the usual data-loading default (RS4A's train.py uses the same)."""
    return min(8, os.cpu_count() or 1)


def _batch_seed(seed: int, b: int) -> int:
    return (seed * 1_000_003 + b * 7_919 + 4_242) % (2**63 - 1)


class _Failure:
    """A user error raised in a worker, carried back as a value so the main process re-raises it as is."""

    def __init__(self, error: Exception):
        self.error = error


class _Batches(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, batches: list[np.ndarray], seed: int | None):
        self.dataset, self.batches, self.seed = dataset, batches, seed

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        from ..errors import AnisocertError

        try:
            if self.seed is None:
                return self.dataset.get(self.batches[b])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_batch_seed(self.seed, b))
                return self.dataset.get(self.batches[b])
        except AnisocertError as err:
            return _Failure(err)


def iter_batches(
    dataset: Dataset,
    batches,
    *,
    workers: int | None = None,
    seed: int | None = None,
    pin_memory: bool = False,
):
    """Yield ``dataset.get(batch)`` for each index array in `batches`, in order.

    For sets that decode or augment on `get` (``dataset.decoded``), `workers` processes (default
    min(8, CPU count); 0 = none) prepare the next batches while the caller computes; other sets are
    read in this process. With `seed`, batch b's augmentation draws come from torch's RNG seeded from
    (seed, b) (the caller's RNG state is left alone), so the inputs do not depend on the worker count.
    """
    batches = [np.asarray(b, dtype=np.int64) for b in batches]
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise InvalidParameterError(f"workers={workers!r} must be an integer >= 0 (0: load in this process)")
    source = _Batches(dataset, batches, seed if dataset.decoded else None)
    # worker processes are forked (the data sets hold closures); without fork, load in this process
    if not dataset.decoded or workers == 0 or "fork" not in multiprocessing.get_all_start_methods():
        items = (source[b] for b in range(len(source)))
    else:
        items = torch.utils.data.DataLoader(
            source,
            batch_size=None,
            shuffle=False,
            num_workers=min(workers, len(batches)) or 1,
            pin_memory=pin_memory,
            multiprocessing_context="fork",
        )
    for item in items:
        if isinstance(item, _Failure):
            raise item.error
        yield item
