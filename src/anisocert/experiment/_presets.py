"""The presets: base models per paper (architecture, method, sigma, training schedule) and certify settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidParameterError, UnknownNameError

__all__ = ["Preset", "PRESETS", "DIGITS_CERTIFY", "get_preset"]

# The digits preset's quick budget: the search optimiser instead of 900 gradient steps, fewer draws.
DIGITS_CERTIFY = dict(
    n0=100,
    n=2_000,
    alpha=0.001,
    skip=27,
    iso_method="search",
    iso_samples=64,
    ancer_iterations=30,
    ancer_samples=32,
    batch_size=2_000,
    inputs_per_batch=20,
)


@dataclass(frozen=True)
class Preset:
    """A comparison: base models (name, nominal sigma, TrainConfig fields) and shared certify settings."""

    name: str
    description: str
    dataset: str  # "cifar10", "imagenet" or "digits"
    models: tuple[tuple[str, float, dict], ...]
    certify: dict
    grid: str

    def data_spec(self, data_root) -> str:
        if self.dataset == "digits":
            return "digits"
        if data_root is None:
            raise InvalidParameterError(
                f"preset {self.name} needs --data-root: the folder holding "
                f"{'cifar-10-batches-py' if self.dataset == 'cifar10' else 'train/ and val/'}"
            )
        return f"{self.dataset}:{data_root}"


def _cifar_l2_models() -> tuple:
    models = []
    for sigma in (0.12, 0.25, 0.5, 1.0):
        common = dict(arch="cifar_resnet18", sigma=sigma, weight_decay=1e-4, schedule="step")
        models += [
            (
                f"gaussian-{sigma}",
                sigma,
                dict(common, method="gaussian", epochs=90, batch_size=256, lr=0.1, lr_step=30),
            ),
            (
                f"smoothadv-{sigma}",
                sigma,
                dict(common, method="smoothadv", epochs=150, batch_size=256, lr=0.1, lr_step=50),
            ),
            (
                f"macer-{sigma}",
                sigma,
                dict(
                    common,
                    method="macer",
                    epochs=440,
                    batch_size=64,
                    lr=0.01,
                    lr_step=200,
                    macer_lambda=4.0 if sigma >= 1.0 else 12.0,
                ),
            ),
        ]
    return tuple(models)


def _l1_models(arch: str, methods: Sequence[str], sigmas: Sequence[float], **train) -> tuple:
    return tuple(
        (f"{m}-{s}", s, dict(train, arch=arch, method=m, sigma=s, sigma_is_std=True))
        for s in sigmas
        for m in methods
    )


def _imagenet_models(method: str, **extra) -> tuple:
    train = dict(
        arch="imagenet_resnet50",
        method=method,
        epochs=90,
        batch_size=256,
        lr=0.1,
        schedule="step",
        lr_step=30,
        weight_decay=1e-4,
        **extra,
    )
    return tuple((f"{method}-{s}", s, dict(train, sigma=s)) for s in (0.25, 0.5, 1.0))


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


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "cifar10-l2",
            "CIFAR-10, l2: gaussian / smoothadv / macer on ResNet-18, sigma 0.12-1.0, 10,000 inputs",
            "cifar10",
            _cifar_l2_models(),
            dict(skip=1),
            "l2-cifar",
        ),
        Preset(
            "cifar10-l1",
            "CIFAR-10, l1: uniform / stability on WideResNet-40-2, sigma (std) 0.25-1.0, 10,000 inputs",
            "cifar10",
            _l1_models(
                "wrn40_2",
                ("uniform", "stability"),
                (0.25, 0.5, 1.0),
                epochs=120,
                batch_size=64,
                lr=0.1,
                weight_decay=1e-4,
            ),
            dict(skip=1),
            "l1",
        ),
        Preset(
            "imagenet-l2",
            "ImageNet, l2: gaussian on ResNet-50, sigma 0.25-1.0, every 100th validation image",
            "imagenet",
            _imagenet_models("gaussian"),
            dict(skip=100),
            "l2-imagenet",
        ),
        Preset(
            "imagenet-l1",
            "ImageNet, l1: uniform on ResNet-50, sigma (std) 0.25-1.0, every 100th validation image",
            "imagenet",
            _imagenet_models("uniform", sigma_is_std=True),
            dict(skip=100),
            "l1",
        ),
        Preset(
            "digits",
            "digits (embedded): all five methods, quick certification budget",
            "digits",
            _digits_models(),
            DIGITS_CERTIFY,
            "l2-cifar",
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
