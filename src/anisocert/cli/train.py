"""`anisocert train`: train a base classifier under noise (gaussian, smoothadv, macer, uniform, stability,
anisotropic)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import user_errors

Opt = typer.Option
_ADV = "SmoothAdv"
_MACER = "MACER"
_ANISO = "anisotropic (for ANCER)"


def train(
    out: Annotated[Path, Opt(help="checkpoint stem: writes OUT.safetensors and the OUT.json sidecar")],
    arch: Annotated[
        str,
        Opt(
            help="registered architecture (input shape): digits_cnn (1x8x8), lenet (1x28x28), "
            "mlp2d (2), cifar_resnet20, cifar_resnet110, cifar_resnet18, ancer_resnet18, wrn40_2 "
            "(3x32x32), imagenet_resnet50 (3x224x224)"
        ),
    ] = "digits_cnn",
    clamp_input: Annotated[
        bool,
        Opt(
            help="architecture option (digits_cnn, lenet): clamp the noisy input to [0, 1] before the "
            "first layer, so noise on one pixel is bounded (recorded in the sidecar's arch_options)"
        ),
    ] = False,
    data: Annotated[
        str, Opt(help="digits | mnist | moons | band | npz:PATH | cifar10:ROOT | imagenet:ROOT")
    ] = "digits",
    val_data: Annotated[
        str | None,
        Opt(
            help="held-out set for the accuracy check (its test split); default: --data's test split, "
            "or none for npz data (one file is one set)"
        ),
    ] = None,
    init: Annotated[
        str | None,
        Opt(
            help="start from this model's weights instead of a random initialisation (fine-tuning): "
            "builtin:NAME or an anisocert checkpoint of the same --arch",
            metavar="MODEL",
        ),
    ] = None,
    method: Annotated[
        str,
        Opt(
            help="gaussian (Cohen) | smoothadv (Salman) | macer (Zhai) | uniform | stability (Yang; l1) | "
            "anisotropic (random per-pixel noise scales, for ANCER)"
        ),
    ] = "gaussian",
    sigma: Annotated[
        float, Opt(help="training noise: std (gaussian noise), half-width (uniform noise)")
    ] = 0.25,
    sigma_is_std: Annotated[
        bool,
        Opt(
            help="uniform noise: read --sigma as the standard deviation (RS4A's "
            "convention); the half-width is sqrt(3) * sigma"
        ),
    ] = False,
    epochs: Annotated[int, Opt(help="training epochs")] = 30,
    batch_size: Annotated[int, Opt(help="clean inputs per SGD step")] = 64,
    lr: Annotated[float, Opt(help="SGD learning rate")] = 0.05,
    momentum: Annotated[float, Opt(help="SGD momentum")] = 0.9,
    nesterov: Annotated[bool, Opt(help="Nesterov momentum (RS4A / ANCER l1 scripts)")] = False,
    weight_decay: Annotated[float, Opt(help="SGD weight decay")] = 5e-4,
    schedule: Annotated[str, Opt(help="cosine | step")] = "cosine",
    lr_step: Annotated[int, Opt(help="step schedule: epochs between decays")] = 30,
    lr_gamma: Annotated[float, Opt(help="step schedule: decay factor")] = 0.1,
    seed: Annotated[int, Opt(help="seed of initialisation, order, augmentation and noise")] = 0,
    smoothadv_eps: Annotated[
        float, Opt(help="l2 attack radius (train_pgd.py's --epsilon 64 = 64/256)", rich_help_panel=_ADV)
    ] = 0.25,
    smoothadv_steps: Annotated[int, Opt(help="PGD steps", rich_help_panel=_ADV)] = 10,
    smoothadv_samples: Annotated[int, Opt(help="noise draws m per input", rich_help_panel=_ADV)] = 1,
    smoothadv_warmup: Annotated[
        int, Opt(help="epochs of linear eps warm-up (1: none)", rich_help_panel=_ADV)
    ] = 10,
    macer_gauss_num: Annotated[int, Opt(help="noise draws per input", rich_help_panel=_MACER)] = 16,
    macer_lambda: Annotated[float, Opt(help="weight of the radius hinge", rich_help_panel=_MACER)] = 12.0,
    macer_gamma: Annotated[
        float, Opt(help="hinge threshold on Phi^-1(p1) - Phi^-1(p2)", rich_help_panel=_MACER)
    ] = 8.0,
    macer_beta: Annotated[
        float, Opt(help="inverse temperature of the hinge's softmax", rich_help_panel=_MACER)
    ] = 16.0,
    macer_deferred: Annotated[
        int, Opt(help="first epochs without the hinge (lambda = 0)", rich_help_panel=_MACER)
    ] = 0,
    stability_weight: Annotated[float, Opt(help="weight of KL(p(x1) || p(x2)) (stability)")] = 6.0,
    aniso_field: Annotated[
        str,
        Opt(
            help="scale field s: pixel (log-uniform per pixel) | smooth (coarse grid, upsampled) | "
            "background (large only away from the strokes)",
            rich_help_panel=_ANISO,
        ),
    ] = "pixel",
    aniso_max_scale: Annotated[
        float, Opt(help="K: theta = sigma * s with s in [1, K]", rich_help_panel=_ANISO)
    ] = 8.0,
    aniso_iso_fraction: Annotated[
        float, Opt(help="share of each batch under plain isotropic noise", rich_help_panel=_ANISO)
    ] = 0.5,
    aniso_iso_max_scale: Annotated[
        float,
        Opt(
            help="C: the isotropic share's theta = sigma * c, one c per input, log-uniform in [1, C] (1: sigma)",
            rich_help_panel=_ANISO,
        ),
    ] = 1.0,
    aniso_grid: Annotated[int, Opt(help="smooth field: coarse cells per side", rich_help_panel=_ANISO)] = 4,
    aniso_margin: Annotated[
        int, Opt(help="background field: distance (pixels) from a stroke with s = 1", rich_help_panel=_ANISO)
    ] = 1,
    amp: Annotated[
        bool, Opt(help="mixed precision on CUDA: float16 + loss scaling (refused on other devices)")
    ] = False,
    device: Annotated[str | None, Opt(help="cpu | cuda | cuda:1 (default: CUDA when present)")] = None,
    workers: Annotated[
        int | None,
        Opt(help="data-loading processes for cifar10 train / imagenet (default min(8, CPUs); 0: none)"),
    ] = None,
    progress: Annotated[bool, Opt(help="progress bar over each epoch (on a terminal)")] = True,
) -> None:
    """Train a base model on noisy inputs; rerunning the same command resumes after the last finished epoch."""
    from ..train import TrainConfig, train_model

    with user_errors():
        config = TrainConfig(
            arch=arch,
            clamp_input=clamp_input,
            data=data,
            val_data=val_data,
            init=init,
            method=method,
            sigma=sigma,
            sigma_is_std=sigma_is_std,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            schedule=schedule,
            lr_step=lr_step,
            lr_gamma=lr_gamma,
            seed=seed,
            smoothadv_eps=smoothadv_eps,
            smoothadv_steps=smoothadv_steps,
            smoothadv_samples=smoothadv_samples,
            smoothadv_warmup=smoothadv_warmup,
            macer_gauss_num=macer_gauss_num,
            macer_lambda=macer_lambda,
            macer_gamma=macer_gamma,
            macer_beta=macer_beta,
            macer_deferred=macer_deferred,
            stability_weight=stability_weight,
            aniso_field=aniso_field,
            aniso_max_scale=aniso_max_scale,
            aniso_iso_fraction=aniso_iso_fraction,
            aniso_iso_max_scale=aniso_iso_max_scale,
            aniso_grid=aniso_grid,
            aniso_margin=aniso_margin,
            amp=amp,
            device=device,
            workers=workers,
        )
        path = train_model(config, out, progress=progress, log=typer.echo)
    typer.echo(f"saved {path} and {path.with_suffix('.json')}")
