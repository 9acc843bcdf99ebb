"""The image folders: CIFAR-10's python batches (restricted unpickler) and ImageNet's class folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataLoadError
from ._dataset import Dataset

__all__ = ["IMAGE_LEVELS", "load_cifar10", "load_imagenet"]

# 8-bit images: pixels uint8 / 255 in float32, the exact sampler's grid. Every 8-bit loader passes
# levels=IMAGE_LEVELS to its Dataset (mnist too).
IMAGE_LEVELS = 255


_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


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


def load_cifar10(spec: str, root: str, split: str) -> Dataset:
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
        "cifar10",
        spec,
        split,
        10,
        (3, 32, 32),
        labels,
        (0.0, 1.0),
        names,
        fetch,
        decoded=augment is not None,
        levels=IMAGE_LEVELS,
    )


def _cifar_augmentation():
    from torchvision import transforms

    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])


# ------------------------------------------------------------------------------------------ ImageNet


def load_imagenet(spec: str, root: str, split: str) -> Dataset:
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
        "imagenet",
        spec,
        split,
        len(classes),
        (3, 224, 224),
        labels,
        (0.0, 1.0),
        classes,
        fetch,
        decoded=True,
        levels=IMAGE_LEVELS,
    )
