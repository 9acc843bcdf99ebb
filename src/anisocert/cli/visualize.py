"""`anisocert visualize`: certified regions on the 2-D toys, theta maps and perturbations of a run (PNG, PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import user_errors

Opt = typer.Option


def visualize(
    target: Annotated[str, typer.Argument(help="'toy' for the 2-D toy pictures, or a run directory")],
    idx: Annotated[list[int] | None, Opt("--idx", help="run: an input to draw (repeat for several)")] = None,
    out: Annotated[Path, Opt(help="folder for the PNG and PDF files")] = Path("figures"),
    iso_run: Annotated[
        Path | None, Opt(help="run: an isotropic run of the same data whose radius d must also exceed")
    ] = None,
    n: Annotated[
        int | None, Opt(help="fresh draws per certificate (toy, default 2000) or for the check at x + d")
    ] = None,
    seed: Annotated[
        int | None, Opt(help="toy: all draws (default 0); run: the check's draws (default: run seed + 1)")
    ] = None,
    margin: Annotated[float, Opt(help="run: aim for ||d||_p >= MARGIN x the isotropic radius")] = 2.0,
    model: Annotated[
        str | None,
        Opt(
            help="run: the run's model for the check at x + d (sha256 checked); needed when the run names "
            "code (factory, TorchScript, .pt2) or a pickle: a run's own model is loaded only as "
            "builtin/safetensors weights"
        ),
    ] = None,
    data: Annotated[list[str] | None, Opt(help="toy: moons and/or band (default both)")] = None,
    inputs: Annotated[int, Opt(help="toy: certified inputs per panel")] = 6,
    grid: Annotated[int, Opt(help="toy: landscape points per axis")] = 100,
    draws: Annotated[int, Opt(help="toy: noise draws per landscape point")] = 100,
    epochs: Annotated[int, Opt(help="toy: training epochs of the toy models")] = 30,
    memory: Annotated[
        bool,
        Opt(
            help="toy: draw the memory-based certificates, as a run reports them (--no-memory: the raw "
            "per-input certificates, whose regions of different classes may overlap)"
        ),
    ] = True,
    device: Annotated[
        str | None, Opt(help="run: device for the check (default: cpu; a run's own device is not reused)")
    ] = None,
) -> None:
    """Draw certificates: `visualize toy` (moons and band: isotropic vs ANCER regions, l2 and l1) or
    `visualize RUN_DIR --idx I` (theta map beside the input; for ANCER runs a perturbation inside the
    anisotropic certificate but outside the isotropic one, checked with the smoothed classifier).
    A run folder named toy is written ./toy. A run directory is data: the model it names is loaded only
    as builtin/safetensors weights matching the run's sha256; otherwise pass --model."""
    from ..errors import InvalidParameterError
    from ..viz.visualize import ToySettings, visualize_run, visualize_toy

    with user_errors():
        if target == "toy":
            if idx:
                raise InvalidParameterError("--idx selects inputs of a run; `visualize toy` picks its own")
            if model:
                raise InvalidParameterError(
                    "--model is for `visualize RUN_DIR`; `visualize toy` trains its own"
                )
            settings = ToySettings(
                inputs=inputs,
                grid=grid,
                draws=draws,
                n=2000 if n is None else n,
                seed=seed or 0,
                epochs=epochs,
                memory=memory,
            )
            kwargs = {"data": tuple(data)} if data else {}
            written = visualize_toy(out, settings, log=typer.echo, **kwargs)
        else:
            if data:
                raise InvalidParameterError("--data is for `visualize toy`; a run knows its data")
            if not memory:
                raise InvalidParameterError(
                    "--no-memory is for `visualize toy`; a run's figures show what the run reports"
                )
            written = visualize_run(
                Path(target),
                idx or [],
                out,
                iso_run=iso_run,
                n=n,
                seed=seed,
                margin=margin,
                model=model,
                device=device,
                log=typer.echo,
            )
    for path in written:
        typer.echo(f"wrote {path}")
