"""`anisocert train`: train a base classifier under noise (gaussian or uniform augmentation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import user_errors

Opt = typer.Option


def train(
    out: Annotated[Path, Opt(help="checkpoint path: writes OUT.safetensors and the OUT.json sidecar")],
    arch: Annotated[
        str, Opt(help="registered architecture, e.g. digits_cnn, cifar_resnet110")
    ] = "digits_cnn",
    data: Annotated[
        str, Opt(help="digits | moons | band | npz:PATH | cifar10:ROOT | imagenet:ROOT")
    ] = "digits",
    method: Annotated[str, Opt(help="gaussian | uniform")] = "gaussian",
    sigma: Annotated[float, Opt(help="training noise: std (gaussian) or half-width (uniform)")] = 0.25,
    epochs: Annotated[int, Opt(help="training epochs")] = 30,
    batch_size: Annotated[int, Opt(help="mini-batch size")] = 64,
    lr: Annotated[float, Opt(help="SGD learning rate (cosine schedule)")] = 0.05,
    seed: Annotated[int, Opt(help="seed of initialisation, order and noise")] = 0,
    device: Annotated[str | None, Opt(help="cpu | cuda")] = None,
) -> None:
    """Train a model on noisy inputs; resumable from the last finished epoch."""
    from ..train import TrainConfig, train_model

    with user_errors():
        config = TrainConfig(
            arch=arch,
            data=data,
            method=method,
            sigma=sigma,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
        )
        path = train_model(config, out)
    typer.echo(f"saved {path} and {path.with_suffix('.json')}")
