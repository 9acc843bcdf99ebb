"""Data sets by spec string -> `Dataset` (labels in memory, inputs as float32 tensors on demand).

Specs (``load_data(spec, split)``, split "test" or "train"):

- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels / 16 in [0, 1],
  shape (1, 8, 8). Fixed split: ``train_test_split(test_size=0.3, random_state=0, stratify=y)``
  -> 1,257 train / 540 test images.
- ``moons``: ``make_moons(n_samples=1000, noise=0.15, random_state=0)``, shape (2,), 2 classes, raw
  coordinates (about [-1.3, 2.3] x [-0.9, 1.4], not [0, 1]); split as for digits -> 700 / 300.
- ``band``: x uniform on [0, 1]^2 (``numpy.random.default_rng(0)``, 1,000 points), label 1 iff
  |x_1 - 0.5| < 0.1 (a horizontal band; x_0 is irrelevant), else 0; split as for digits -> 700 / 300.
  The boundary is axis-aligned, so a point's exact l2 / l1 distance to it is 0.1 - |x_1 - 0.5| (class 1)
  or |x_1 - 0.5| - 0.1 (class 0), and along x_0 it is infinite: the case anisotropic certificates are for.
- ``npz:PATH``: arrays ``x`` (N, *D) floating point (any range) and ``y`` (N,) integers >= 0; an optional
  scalar ``num_classes`` (else max(y) + 1). The file is one set: both splits return it.
- ``cifar10:ROOT``: the python batches under ``ROOT/cifar-10-batches-py`` (data_batch_1..5 = train,
  test_batch = test), read by a restricted unpickler (numpy arrays only; no md5 check, so subsets work).
  Test: ToTensor; train: RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor, drawn on each
  `get` from torch's global RNG.
- ``imagenet:ROOT``: ``torchvision.datasets.ImageFolder(ROOT/val)`` or ``ROOT/train`` (class index =
  sorted wnid order, as torchvision's ImageNet). Test: Resize(256) + CenterCrop(224) + ToTensor;
  train: RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor. Images are decoded on `get` only.

``iter_batches`` reads a list of index batches in order, with worker processes for the sets that decode
or augment on every `get` (cifar10 train, imagenet); the in-memory sets are read in the calling process.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import DataLoadError, InvalidParameterError, UnknownNameError

__all__ = [
    "Dataset",
    "load_data",
    "select_indices",
    "iter_batches",
    "default_workers",
    "DATA_SPECS",
    "SPLITS",
]

SPLITS = ("test", "train")
DATA_SPECS = ("digits", "moons", "band", "npz:PATH", "cifar10:ROOT", "imagenet:ROOT")
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


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

    def __repr__(self) -> str:
        return (
            f"Dataset({self.spec!r}, split={self.split!r}, n={len(self)}, num_classes={self.num_classes}, "
            f"input_shape={self.input_shape})"
        )


def load_data(spec: str, split: str = "test") -> Dataset:
    """Load a data set from its spec (see the module docstring).

    Parameters
    ----------
    spec : str
        ``digits``, ``moons``, ``band``, ``npz:PATH``, ``cifar10:ROOT`` or ``imagenet:ROOT``.
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


# ------------------------------------------------------------------------------------ batch loading


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
        from .errors import AnisocertError

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


# ------------------------------------------------------------------------------------ in-memory sets


def _in_memory(name, spec, split, x: np.ndarray, y: np.ndarray, num_classes: int, value_range) -> Dataset:
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return Dataset(
        name=name,
        spec=spec,
        split=split,
        num_classes=int(num_classes),
        input_shape=tuple(inputs.shape[1:]),
        labels=np.ascontiguousarray(y, dtype=np.int64),
        value_range=value_range,
        _fetch=lambda idx: inputs[torch.from_numpy(idx)],
    )


def _fixed_split(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
    keep = np.sort(train if split == "train" else test)
    return x[keep], y[keep]


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).reshape(-1, 1, 8, 8), bunch.target


def _load_digits(spec: str, _arg: str, split: str) -> Dataset:
    x, y = _fixed_split(*_digits_arrays(), split)
    return _in_memory("digits", spec, split, x, y, 10, (0.0, 1.0))


def _load_moons(spec: str, _arg: str, split: str) -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.15, random_state=0)
    x, y = _fixed_split(x, y, split)
    return _in_memory("moons", spec, split, x, y, 2, None)


def band_labels(x: np.ndarray) -> np.ndarray:
    """The band's labelling rule: 1 where |x_1 - 0.5| < 0.1, else 0; x of shape (N, 2)."""
    return (np.abs(np.asarray(x)[:, 1] - 0.5) < 0.1).astype(np.int64)


def _load_band(spec: str, _arg: str, split: str) -> Dataset:
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(1000, 2))
    x, y = _fixed_split(x, band_labels(x), split)
    return _in_memory("band", spec, split, x, y, 2, (0.0, 1.0))


def _load_npz(spec: str, arg: str, split: str) -> Dataset:
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
    return _in_memory("npz", spec, split, x, y, num_classes, None)


# ------------------------------------------------------------------------------------------ CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only; any other global is refused (a batch cannot run code)."""

    def find_class(self, module: str, name: str):
        core = getattr(np, "_core", None) or np.core
        allowed = {
            ("multiarray", "_reconstruct"): core.multiarray._reconstruct,
            ("multiarray", "scalar"): core.multiarray.scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        key = (module.rsplit(".", 1)[-1], name)
        if module.split(".")[0] == "numpy" and key in allowed:
            return allowed[key]
        if (module, name) == ("_codecs", "encode"):  # bytes written by Python 3 with protocol 2
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data batch")


def _read_cifar_batch(path: Path, root: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one python batch (row = R, G, B planes)."""
    fix = f"re-extract cifar-10-python.tar.gz into {root}"
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataLoadError(
            f"CIFAR-10 batch {path} is missing: put the python batches (data_batch_1..5, test_batch) under "
            f"{Path(root) / _CIFAR_DIR} ({fix})"
        ) from None
    except Exception as err:  # truncated, not a pickle, or a pickle with foreign objects
        raise DataLoadError(f"{path} is not a CIFAR-10 python batch ({err}); {fix}") from None
    if not isinstance(batch, dict):
        raise DataLoadError(f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dict; {fix}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataLoadError(f"{path}: 'data' must be a uint8 array (N, 3072); {fix}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (data.shape[0],) or (labels < 0).any() or (labels > 9).any():
        raise DataLoadError(f"{path}: 'labels' must be N = {data.shape[0]} integers in 0..9; {fix}")
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar10(spec: str, root: str, split: str) -> Dataset:
    folder = Path(root).expanduser() / _CIFAR_DIR
    if not folder.is_dir():
        raise DataLoadError(
            f"no CIFAR-10 folder {folder}: put the CIFAR-10 python batches under {folder} "
            f"(extract cifar-10-python.tar.gz into {root})"
        )
    parts = [
        _read_cifar_batch(folder / n, root) for n in (_CIFAR_TRAIN if split == "train" else ("test_batch",))
    ]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    names = None
    if (folder / "batches.meta").is_file():
        try:
            with open(folder / "batches.meta", "rb") as handle:
                meta = _ArrayUnpickler(handle, encoding="latin1").load()
            raw = meta.get(b"label_names", meta.get("label_names"))
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
        except Exception as err:
            raise DataLoadError(f"{folder / 'batches.meta'} is unreadable ({err}); re-extract it") from None
    augment = _cifar_augmentation() if split == "train" else None

    def fetch(idx: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(images[idx])
        if augment is not None:
            batch = torch.stack([augment(img) for img in batch])
        return batch.to(torch.float32).div_(255.0)

    return Dataset(
        "cifar10", spec, split, 10, (3, 32, 32), labels, (0.0, 1.0), names, fetch, decoded=augment is not None
    )


def _cifar_augmentation():
    from torchvision import transforms

    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])


# ------------------------------------------------------------------------------------------ ImageNet


def _load_imagenet(spec: str, root: str, split: str) -> Dataset:
    from torchvision import datasets, transforms

    folder = Path(root).expanduser() / ("val" if split == "test" else "train")
    if not folder.is_dir():
        raise DataLoadError(
            f"no ImageNet folder {folder}: put the {'validation' if split == 'test' else 'training'} images "
            f"in class sub-folders {folder}/<wnid>/*.JPEG"
        )
    if split == "test":
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    else:
        tf = transforms.Compose(
            [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )
    try:
        folder_set = datasets.ImageFolder(str(folder), transform=tf)
    except (FileNotFoundError, OSError) as err:
        raise DataLoadError(f"ImageNet folder {folder}: {err}; expected {folder}/<wnid>/*.JPEG") from None

    def fetch(idx: np.ndarray) -> torch.Tensor:
        images = []
        for i in idx.tolist():
            try:
                images.append(folder_set[i][0])
            except OSError as err:  # PIL.UnidentifiedImageError is an OSError
                raise DataLoadError(
                    f"cannot decode {folder_set.samples[i][0]}: {err}; replace the file"
                ) from None
        return torch.stack(images)

    labels = np.asarray(folder_set.targets, dtype=np.int64)
    classes = tuple(folder_set.classes)
    return Dataset(
        "imagenet", spec, split, len(classes), (3, 224, 224), labels, (0.0, 1.0), classes, fetch, decoded=True
    )


_LOADERS: dict[str, Callable[[str, str, str], Dataset]] = {
    "digits": _load_digits,
    "moons": _load_moons,
    "band": _load_band,
    "npz": _load_npz,
    "cifar10": _load_cifar10,
    "imagenet": _load_imagenet,
}
