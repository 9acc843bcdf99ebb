"""The sets built in memory from scikit-learn or a fixed rule: digits, moons and band (fixed 70/30 split)."""

from __future__ import annotations

import functools

import numpy as np

from ._dataset import Dataset, in_memory

__all__ = ["band_labels", "load_band", "load_digits", "load_moons"]


def _fixed_split(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
    keep = np.sort(train if split == "train" else test)
    return x[keep], y[keep]


DIGITS_LEVELS = 16  # scikit-learn's digits are integers 0..16, stored / 16


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).reshape(-1, 1, 8, 8), bunch.target


def load_digits(spec: str, _arg: str, split: str) -> Dataset:
    x, y = _fixed_split(*_digits_arrays(), split)
    return in_memory("digits", spec, split, x, y, 10, (0.0, 1.0), levels=DIGITS_LEVELS)


def load_moons(spec: str, _arg: str, split: str) -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.15, random_state=0)
    x, y = _fixed_split(x, y, split)
    return in_memory("moons", spec, split, x, y, 2, None)


def band_labels(x: np.ndarray) -> np.ndarray:
    """The band's labelling rule: 1 where |x_1 - 0.5| < 0.1, else 0; x of shape (N, 2)."""
    return (np.abs(np.asarray(x)[:, 1] - 0.5) < 0.1).astype(np.int64)


def load_band(spec: str, _arg: str, split: str) -> Dataset:
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(1000, 2))
    x, y = _fixed_split(x, band_labels(x), split)
    return in_memory("band", spec, split, x, y, 2, (0.0, 1.0))
