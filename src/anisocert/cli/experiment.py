"""`anisocert experiment`: run one of the paper's comparisons end to end (train, certify, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import command_line, user_errors

Opt = typer.Option


def parse_sigmas(text: str | None) -> tuple[float, ...] | None:
    """'0.25,0.5' -> (0.25, 0.5)."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of sigmas; write e.g. 0.25,0.5") from None


def parse_pretrained(items: list[str] | None) -> dict[str, str]:
    """['gaussian-0.25=cifar_resnet110:noise_0.25.pth'] -> {'gaussian-0.25': 'cifar_resnet110:...'}."""
    out = {}
    for item in items or []:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise typer.BadParameter(
                f"{item!r} must look like NAME=SPEC, e.g. gaussian-0.25=cifar_resnet110:m.pth"
            )
        out[name.strip()] = spec.strip()
    return out


def experiment(
    preset: Annotated[
        str, typer.Argument(help="cifar10-l2 | cifar10-l1 | imagenet-l2 | imagenet-l1 | digits | mnist")
    ],
    out: Annotated[Path, Opt(help="experiment folder (models/, runs/, report/); rerun to resume")] = Path(
        "experiment"
    ),
    data_root: Annotated[
        Path | None, Opt(help="folder holding cifar-10-batches-py (CIFAR-10) or train/ and val/ (ImageNet)")
    ] = None,
    dry_run: Annotated[
        bool, Opt(help="list the steps with forward passes and time on this hardware")
    ] = False,
    sigmas: Annotated[str | None, Opt(help="only the base models of these sigmas, e.g. 0.25,0.5")] = None,
    pretrained: Annotated[
        list[str] | None, Opt(help="NAME=SPEC: use this load_model spec instead of training base model NAME")
    ] = None,
    overrides: Annotated[
        list[str] | None, Opt("--set", help="change a field in every step: train.epochs=10, certify.n=10000")
    ] = None,
    device: Annotated[str | None, Opt(help="cpu | cuda | cuda:1 (default: CUDA when present)")] = None,
    progress: Annotated[bool, Opt(help="progress bars")] = True,
    quick: Annotated[
        bool, Opt(help="the preset's quick variant (mnist: 2 models, 4 inputs, 400 draws): a pipeline check")
    ] = False,
) -> None:
    """Train (or import) the preset's base models, certify each with fixed, isotropic and ANCER noise
    (memory-based), and write the reports. Finished steps are skipped, so rerunning resumes."""
    from ..experiment import run_experiment

    sigma_list = parse_sigmas(sigmas)
    models = parse_pretrained(pretrained)
    with user_errors():
        run_experiment(
            preset,
            out,
            data_root=data_root,
            dry_run=dry_run,
            sigmas=sigma_list,
            pretrained=models,
            overrides=overrides,
            device=device,
            progress=progress,
            log=typer.echo,
            command=command_line(),
            quick=quick,
        )
