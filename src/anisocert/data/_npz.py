"""``npz:PATH``: arrays x (N, *D) floats and y (N,) labels from one .npz file, checked before use."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataLoadError
from ._dataset import Dataset, in_memory

__all__ = ["load_npz"]


def load_npz(spec: str, arg: str, split: str) -> Dataset:
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataLoadError(f"npz file {path} does not exist; save one with numpy.savez(PATH, x=x, y=y)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataLoadError(f"cannot read {path} as .npz (arrays x and y, no pickles): {err}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataLoadError(
            f"{path} lacks array {' and '.join(missing)}; it has {sorted(arrays)} (need x and y)"
        )
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataLoadError(f"{path}: x has shape {x.shape}; need (N, *D) with N >= 1")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataLoadError(f"{path}: x has dtype {x.dtype}; store floats (e.g. images as x / 255.0)")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataLoadError(
            f"{path}: y has shape {y.shape} but x has {x.shape[0]} rows; need y of shape (N,)"
        )
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise DataLoadError(f"{path}: y must hold integer class labels >= 0 (dtype {y.dtype})")
    if not np.isfinite(x).all():
        raise DataLoadError(f"{path}: x holds {int((~np.isfinite(x)).sum())} NaN/Inf values; remove them")
    num_classes = int(y.max()) + 1
    if "num_classes" in arrays:
        given = arrays["num_classes"]
        if given.shape != () or not np.issubdtype(given.dtype, np.integer) or int(given) < num_classes:
            raise DataLoadError(
                f"{path}: num_classes={given!r} must be an integer scalar > max(y) = {num_classes - 1}"
            )
        num_classes = int(given)
    return in_memory("npz", spec, split, x, y, num_classes, None, levels=detect_levels(x))


def detect_levels(x: np.ndarray, levels: int = 255) -> int | None:
    """levels when every value of x is k / levels to float32 precision (the float32 nearest k / levels, as
    uint8 / 255 gives; one ulp off is not on the grid), else None: 8-bit images saved as floats."""
    from ..core.exact import grid_indices

    on = grid_indices(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), levels)[1]
    return levels if bool(on.all()) else None
