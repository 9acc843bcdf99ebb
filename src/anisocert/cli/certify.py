"""`anisocert certify`: certify a data set with fixed, isotropic data-dependent or ANCER noise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import command_line, user_errors

Opt = typer.Option


def parse_indices(text: str | None) -> tuple[int, ...] | None:
    """'3,7,10-12' -> (3, 7, 10, 11, 12)."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of indices; write e.g. 0,5,10-19") from None
    return tuple(out)


def _command(optimise_only: bool):
    """The certify command (optimise_only False) or the optimize command: the same options, one config."""

    def command(
        model: Annotated[
            str,
            Opt(
                help="builtin:digits-gaussian | builtin:mnist-gaussian-0.50 (see README) | ARCH:WEIGHTS | WEIGHTS.safetensors (with .json "
                "sidecar) | file.pt2 | TorchScript file | package.module:factory"
            ),
        ] = "builtin:digits-gaussian",
        data: Annotated[
            str, Opt(help="digits | mnist | moons | band | npz:PATH | cifar10:ROOT | imagenet:ROOT")
        ] = "digits",
        out: Annotated[
            Path, Opt(help="run directory (created, or resumed when it holds the same run)")
        ] = Path("run"),
        noise: Annotated[
            str | None,
            Opt(
                help="gaussian (l2 ellipsoids; sigma = std) | uniform (l1; sigma = half-width) "
                "[default: the model's training noise from its sidecar, else gaussian]"
            ),
        ] = None,
        method: Annotated[
            str, Opt(help="fixed | isotropic (data-dependent sigma) | ancer (anisotropic theta)")
        ] = "fixed",
        sigma: Annotated[
            float | None,
            Opt(
                help="noise scale, or the start of the optimisation [default: the model's training sigma "
                "from its sidecar (when the noise matches), else 0.25]"
            ),
        ] = None,
        n0: Annotated[int, Opt(help="selection draws")] = 100,
        n: Annotated[int, Opt(help="estimation draws (fresh)")] = 100_000,
        alpha: Annotated[float, Opt(help="one-sided failure probability per input")] = 0.001,
        seed: Annotated[int, Opt(help="noise seed; each input's stream depends on (seed, index) only")] = 0,
        split: Annotated[str, Opt(help="test | train")] = "test",
        skip: Annotated[int, Opt(help="certify every SKIP-th input")] = 1,
        max_count: Annotated[int | None, Opt("--max", help="at most this many inputs")] = None,
        indices: Annotated[str | None, Opt(help="explicit indices, e.g. 0,5,10-19")] = None,
        iso_method: Annotated[
            str,
            Opt(
                help="isotropic optimiser: gradient (public DDRS) | search (cheap, same surrogate) | votes (cheap, "
                "searches the radius certification would report; the default)"
            ),
        ] = "votes",
        iso_iterations: Annotated[int, Opt(help="isotropic optimisation steps")] = 900,
        iso_lr: Annotated[float, Opt(help="isotropic learning rate")] = 0.04,
        iso_samples: Annotated[
            int, Opt(help="noise draws per isotropic step (searches: per candidate; 1000 is their usual)")
        ] = 100,
        iso_sigma_min: Annotated[float | None, Opt(help="smallest sigma_x [default: sigma / 10]")] = None,
        iso_sigma_max: Annotated[
            float | None,
            Opt(help="largest sigma_x [default: none for gradient, 10 * sigma for the searches]"),
        ] = None,
        iso_grid_points: Annotated[int, Opt(help="searches: log-spaced grid points")] = 8,
        iso_refine_steps: Annotated[int, Opt(help="searches: golden-section steps after the grid")] = 6,
        ancer_iterations: Annotated[
            int | None,
            Opt(help="ANCER Adam steps [default: 100; 30 for the certified objective on --data digits]"),
        ] = None,
        ancer_lr: Annotated[
            float | None,
            Opt(
                help="ANCER Adam step (theta grows about this much per step) [default: 0.2 for the certified "
                "objective on images, whose check keeps the ball; 0.04 (the public one) otherwise]"
            ),
        ] = None,
        ancer_samples: Annotated[
            int | None,
            Opt(
                help="noise draws per ANCER step [default: 100; 32 for the certified objective on --data digits]"
            ),
        ] = None,
        ancer_tol: Annotated[
            float | None,
            Opt(help="stop an input once J gains less than this (relative) over --ancer-patience steps"),
        ] = None,
        ancer_patience: Annotated[int, Opt(help="steps over which --ancer-tol is measured")] = 10,
        kappa: Annotated[float, Opt(help="ANCER weight of gap * min(theta)")] = 2.0,
        ancer_objective: Annotated[
            str | None,
            Opt(
                help="ancer: certified (Adam's theta, then the largest step from sigma_x towards it whose hard-vote "
                "forecast radius keeps the isotropic one) | paper (the public ANCER objective alone) "
                "[default: certified]"
            ),
        ] = None,
        ancer_check_samples: Annotated[int, Opt(help="certified objective: check draws per input")] = 500,
        ancer_check_steps: Annotated[int, Opt(help="certified objective: bisection steps")] = 6,
        ancer_check_margin: Annotated[
            float, Opt(help="certified objective: z, lowers the check share by z * sqrt(flips) / draws")
        ] = 1.0,
        fallback: Annotated[
            str | None,
            Opt(
                help="ancer: keep the region a superset of the isotropic certificate: both (certify both, "
                "alpha/2 each, report the larger) | select (the selection draws pick which one to certify, at "
                "alpha: one certification) | off (theta only, as the public code) "
                "[default: select on --data digits, off on other data]"
            ),
        ] = None,
        memory: Annotated[bool, Opt(help="memory-based certification (isotropic and ancer)")] = True,
        channels_last: Annotated[
            bool,
            Opt(
                help="certify with channels-last inputs and weights: faster convolutions on GPUs, and on "
                "CPUs for LeNet (2x here; a ResNet-18 1.1x slower); scores differ in the last bits"
            ),
        ] = False,
        bf16: Annotated[bool, Opt(help="certify under bfloat16 autocast (the run records it)")] = False,
        compile: Annotated[bool, Opt(help="certify with torch.compile'd forward passes (CUDA only)")] = False,
        early_stop: Annotated[
            bool, Opt(help="stop an input's draws once its outcome is settled (abstain; ancer fallback)")
        ] = True,
        radii: Annotated[
            str | None,
            Opt(
                help="sequential certification for these radii (e.g. 0.25,0.5,0.75,1.0): draws in rounds, each "
                "input stops once its place on the grid is settled (sound at --alpha; see docs/soundness.md)"
            ),
        ] = None,
        radii_on: Annotated[
            str, Opt(help="ancer: the --radii grid is on the radius (min theta * gap) or on the proxy radius")
        ] = "radius",
        reuse: Annotated[
            Path | None,
            Opt(
                help="take the optimised sigma/theta (and isotropic counts) of this earlier run of the same settings; "
                "when it is this run on another --skip/--max/--indices, the certificates of the inputs both select"
            ),
        ] = None,
        on_inside: Annotated[str, Opt(help="input inside a foreign region: abstain | adopt")] = "abstain",
        sampler: Annotated[
            str | None,
            Opt(
                help="exact: noise rounded to the inputs' grid, made in integers (sound in floating point; "
                "docs/soundness.md) | float: x + theta * randn. Default: exact when the data have a grid"
            ),
        ] = None,
        levels: Annotated[
            int | None, Opt(help="the inputs' grid k / LEVELS (npz data; default: the data set's own)")
        ] = None,
        round_inputs: Annotated[
            bool,
            Opt("--round", help="exact sampler: round inputs off the grid to it instead of refusing them"),
        ] = False,
        batch_size: Annotated[int, Opt(help="noisy samples per forward pass")] = 1000,
        inputs_per_batch: Annotated[int, Opt(help="inputs certified together (commit granularity)")] = 8,
        device: Annotated[str | None, Opt(help="cpu | cuda | cuda:1 (default: CUDA when present)")] = None,
        label: Annotated[str | None, Opt(help="name of the run in reports")] = None,
        workers: Annotated[
            int, Opt(help="Ray workers, one GPU each when there are GPUs (> 1 needs anisocert[ray])")
        ] = 1,
        ray_address: Annotated[
            str | None, Opt(help="join this Ray cluster (e.g. auto) instead of starting a local one")
        ] = None,
        progress: Annotated[
            bool,
            Opt(
                help="show progress: a bar on a terminal; redirected to a file, a line every 30 s (inputs done, "
                "inputs/min, ETA, phase)"
            ),
        ] = True,
    ) -> None:
        from ..core.settings import Budget, SigmaSearch, ThetaSearch
        from ..run.config import CertifyConfig, Execution, ancer_defaults
        from ..run.runner import certify_dataset

        with user_errors():
            by_data = ancer_defaults(data, ancer_objective)
            named = {"iterations": ancer_iterations, "lr": ancer_lr, "samples": ancer_samples}
            adam = {k: by_data.get(f"ancer_{k}") if v is None else v for k, v in named.items()}
            budget = Budget(
                n0=n0, n=n, alpha=alpha, seed=seed, early_stop=early_stop, radii=radii, radii_on=radii_on
            )
            sigma_search = SigmaSearch(
                method=iso_method,
                iterations=iso_iterations,
                lr=iso_lr,
                samples=iso_samples,
                sigma_min=iso_sigma_min,
                sigma_max=iso_sigma_max,
                grid_points=iso_grid_points,
                refine_steps=iso_refine_steps,
            )
            theta_search = ThetaSearch(
                objective=by_data["ancer_objective"],
                **{k: v for k, v in adam.items() if v is not None},  # None: ThetaSearch's default
                tol=ancer_tol,
                patience=ancer_patience,
                kappa=kappa,
                check_samples=ancer_check_samples,
                check_steps=ancer_check_steps,
                check_margin=ancer_check_margin,
            )
            execution = Execution(
                batch_size=batch_size,
                inputs_per_batch=inputs_per_batch,
                device=device,
                label=label,
                workers=workers,
                ray_address=ray_address,
                reuse=None if reuse is None else str(reuse),
                channels_last=channels_last,
                bf16=bf16,
                compile=compile,
            )
            config = CertifyConfig(
                model=model,
                data=data,
                split=split,
                noise=noise,
                method=method,
                sigma=sigma,
                skip=skip,
                max_count=max_count,
                indices=parse_indices(indices),
                fallback=fallback or by_data["fallback"],
                memory=memory,
                on_inside=on_inside,
                sampler=sampler,
                levels=levels,
                round_inputs=round_inputs,
                budget=budget,
                sigma_search=sigma_search,
                theta_search=theta_search,
                execution=execution,
            )
            run = certify_dataset(
                config, out, progress=progress, command=command_line(), optimise_only=optimise_only
            )
        typer.echo(run.text())

    return command


certify = _command(optimise_only=False)
certify.__name__ = certify.__qualname__ = "certify"
certify.__doc__ = (
    """Certify every selected input of DATA; records go to OUT/run.sqlite and OUT/certify.tsv."""
)

optimize = _command(optimise_only=True)
optimize.__name__ = optimize.__qualname__ = "optimize"
optimize.__doc__ = """Optimise sigma_x (isotropic) and theta_x (ancer) of every selected input, without certifying.

They are stored in OUT/run.sqlite as they finish; `anisocert certify` with the same options and --out
then certifies with them (or --reuse OUT from another run directory).
"""
