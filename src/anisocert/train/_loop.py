"""The training loop: SGD with a cosine or step schedule, seeded per epoch, resumable after every epoch.

Every source of randomness in epoch e (the order of the training inputs, the noise draws, the global
torch RNG used by dropout or augmentation) is seeded from (seed, e) at the start of the epoch, so a run
stopped after k epochs and resumed gives the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._checks import check_device
from ..errors import InputError, InvalidParameterError
from ._config import EXECUTION_ONLY, TrainConfig
from ._evaluate import heldout_accuracy, noisy_accuracy
from ._state import finished, paths, resume, save_state
from .objectives import OBJECTIVES, Step

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = [
    "train_model",
    "reproduce_command",
    "resolve_device",
    "amp_dtype",
]


def resolve_device(requested: str | None) -> torch.device:
    """The requested device (checked to exist), else CUDA when present, else the CPU."""
    return check_device(requested)


def _check_fits(model, dataset, device) -> None:
    """One clean input through the model in eval mode (no state changes): --arch must fit --data."""
    from ..run.runner import check_model_fits

    model.eval()
    try:
        check_model_fits(model, dataset, device)
    except InputError as err:
        raise InputError(str(err).replace("--model", "--arch")) from None


@dataclass
class _Run:
    """What a training run works on, built by `_setup` (whose order of steps fixes the RNG state)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: torch.dtype | None
    train: Dataset
    test: Dataset | None  # held-out images; None when there are none (npz data without --val-data)
    start: int  # epochs finished before this call (resumed)
    init_sha256: str | None = None  # digest of the --init weights (None: random initialisation)


def train_model(
    config: TrainConfig,
    out,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train config.arch on config.data with config.method; writes OUT.safetensors and the OUT.json sidecar.

    Parameters
    ----------
    config : TrainConfig
        The run; its result fields decide the weights.
    out : str or Path
        Checkpoint stem (``runs/m`` writes ``runs/m.safetensors`` and ``runs/m.json``).
    progress : bool
        Show a progress bar over each epoch's batches and print one line per epoch.
    log : callable, optional
        Where the per-epoch lines go (default: print when progress is on).
    stop_after : int, optional
        Stop after this many epochs in total, keeping the resume state (for tests and time-boxed jobs);
        returns the state path then.

    Returns the weights path. Resumable: after each epoch the state goes to OUT.state.pt (tensors only,
    written atomically) and is picked up by the next call with the same config; a finished checkpoint
    whose sidecar records the same config is returned without training.
    """
    log = log or (print if progress else (lambda text: None))
    weights, sidecar, state_path = paths(out)
    if weights.is_file() and finished(sidecar, config):
        log(f"{weights} already holds this training run; delete it to train again")
        return weights
    run = _setup(config, state_path)
    if run.start:
        log(f"resuming {weights.name} after epoch {run.start}/{config.epochs}")
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    _train_epochs(run, config, last, state_path, log, progress)
    if last < config.epochs:
        return state_path
    path = _evaluate_and_save(run, config, weights, log)
    state_path.unlink(missing_ok=True)
    return path


def _setup(config: TrainConfig, state_path: Path) -> _Run:
    """Device, data, model, SGD, schedule and loss scaler; restored from the resume state when there is one."""
    from ..data import load_data
    from ..models import create_model

    device = resolve_device(config.device)
    amp = amp_dtype(device) if config.amp else None
    train, test = load_data(config.data, "train"), heldout_set(config)
    torch.manual_seed(config.seed)
    model = create_model(config.arch, num_classes=train.num_classes, **config.arch_options).to(device)
    init_sha256 = warm_start(model, config) if config.init is not None else None
    _check_fits(model, train, device)
    if test is not None and test.input_shape != train.input_shape:
        raise InputError(
            f"--val-data {test.spec} has inputs of shape {test.input_shape} but --data {train.spec} has "
            f"{train.input_shape}; give held-out images of the training images' shape"
        )
    opt = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    sched = _scheduler(opt, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is not None)  # float16 needs loss scaling
    start = resume(state_path, config, model, opt, sched, scaler, device)
    return _Run(model, opt, sched, scaler, device, amp, train, test, start, init_sha256)


def warm_start(model, config: TrainConfig) -> str | None:
    """Replace `model`'s random weights by those of ``config.init`` (fine-tuning, as Salman et al. did from
    Cohen et al.'s models); refused with one line when they belong to another architecture or class count.
    Returns the sha256 of the weights file (recorded in the sidecar)."""
    from ..errors import ModelLoadError
    from ..models import load_model
    from ..models._state_dict import assign_state_dict

    source = load_model(config.init)
    if source.arch is not None and source.arch != config.arch:
        raise InputError(
            f"--init {config.init} is a {source.arch} model and --arch is {config.arch}; "
            f"pass --arch {source.arch} or another --init"
        )
    try:
        assign_state_dict(model, source.module.state_dict(), source=config.init)
    except ModelLoadError as err:
        raise InputError(f"--init {config.init} does not fit --arch {config.arch}: {err}") from None
    return source.sha256


def heldout_set(config: TrainConfig) -> Dataset | None:
    """The images the accuracy check runs on, never the training images: --val-data's test split, else
    the data set's own test split; None for npz data (one file is one set, both splits return it)."""
    from ..data import load_data

    if config.val_data is not None:
        return load_data(config.val_data, "test")
    if config.data.strip().startswith("npz:"):
        return None
    return load_data(config.data, "test")


def _train_epochs(run: _Run, config: TrainConfig, last: int, state_path: Path, log, progress: bool) -> None:
    """Epochs run.start .. last - 1; after each, the resume state is saved and one line is logged."""
    objective = OBJECTIVES[config.method]
    generator = torch.Generator(device=run.device)
    t0 = time.perf_counter()
    for epoch in range(run.start, last):
        loss = _epoch(
            run.model,
            run.opt,
            run.scaler,
            run.train,
            objective.loss,
            config,
            epoch,
            generator,
            run.device,
            run.amp,
            progress,
        )
        run.sched.step()
        save_state(state_path, config, run.model, run.opt, run.sched, run.scaler, epoch + 1)
        log(
            f"epoch {epoch + 1}/{config.epochs}  {config.method} loss {loss:.4f}  "
            f"lr {run.opt.param_groups[0]['lr']:.4g}  ({time.perf_counter() - t0:.0f} s)"
        )


def _evaluate_and_save(run: _Run, config: TrainConfig, weights: Path, log) -> Path:
    """Held-out accuracy (clean and under the training noise), then the checkpoint with its sidecar."""
    from ..models.checkpoint import save_checkpoint

    model, device, amp, test = run.model, run.device, run.amp, run.test
    model.eval()
    clean = noisy = None
    if test is None:
        log("no held-out set (npz data is one set): give --val-data npz:OTHER to check the accuracy")
    else:
        kw = dict(batch_size=config.eval_batch_size, workers=config.workers)
        clean = heldout_accuracy(model, test, device, **kw)
        noisy = noisy_accuracy(model, test, OBJECTIVES[config.method].noise, config.theta, device, **kw)
        log(
            f"held-out ({len(test)} inputs of {test.spec} {test.split}): clean accuracy {clean:.4f}, "
            f"under training noise {noisy:.4f}"
        )
    return save_checkpoint(
        weights,
        model,
        arch=config.arch,
        num_classes=run.train.num_classes,
        meta={
            **sidecar_meta(config, weights, clean=clean, noisy=noisy, heldout=test),
            "init_sha256": run.init_sha256,
            "device": str(device),
            "amp_used": amp is not None,
            "amp_dtype": str(amp).removeprefix("torch.") if amp is not None else None,
        },
    )


def sidecar_meta(config: TrainConfig, out, *, clean, noisy, heldout) -> dict:
    """What a trained checkpoint records besides arch, classes, normalisation and code version
    (held-out figures are None when there was no held-out set)."""
    objective = OBJECTIVES[config.method]
    return {
        "method": config.method,
        "reference": objective.reference,
        "hyper_parameters": config.hyperparameters(),
        "noise": objective.noise,
        "sigma": config.theta,  # in the theta convention of the noise (std or half-width)
        "sigma_given": config.sigma,
        "sigma_is_std": config.sigma_is_std,
        "theta_note": config.theta_convention,
        "data": config.data,
        "epochs": config.epochs,
        "held_out_accuracy": clean,
        "held_out_noisy_accuracy": noisy,
        "held_out_data": heldout.spec if heldout is not None else None,
        "held_out_split": heldout.split if heldout is not None else None,
        "held_out_count": len(heldout) if heldout is not None else 0,
        "training": config.result_dict(),
        "command": reproduce_command(config, out),
    }


# -- one epoch --------------------------------------------------------------------------------------


def _epoch(
    model, opt, scaler, train, loss_fn, config: TrainConfig, epoch: int, generator, device, amp, progress
) -> float:
    """One pass over the training inputs in a (seed, epoch)-determined order; returns the mean loss.

    Augmentation (image train splits) is seeded per batch from (seed, epoch, batch), so the weights do
    not depend on the number of loader workers."""
    from ..data import iter_batches

    torch.manual_seed(_epoch_seed(config.seed, epoch))
    generator.manual_seed(_epoch_seed(config.seed, epoch) + 1)
    order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
    batches = [order[b : b + config.batch_size] for b in range(0, len(order), config.batch_size)]
    step = Step(theta=config.theta, generator=generator, epoch=epoch, config=config)
    model.train()
    total = torch.zeros((), device=device)
    labels = np.asarray(train.labels)
    inputs = iter_batches(
        train,
        batches,
        workers=config.workers,
        seed=_epoch_seed(config.seed, epoch) + 2,
        pin_memory=device.type == "cuda",
    )
    with _Bar(progress, len(batches), f"epoch {epoch + 1}/{config.epochs}") as advance:
        for idx, x in zip(batches, inputs, strict=True):
            x = x.to(device, torch.float32, non_blocking=True)
            y = torch.as_tensor(labels[idx], device=device, dtype=torch.long)
            with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                loss = loss_fn(model, x, y, step)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach().float() * len(idx)  # summed on the device: no sync per step
            advance()
    return float(total) / len(order)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def _scheduler(opt, config: TrainConfig):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)


def amp_dtype(device) -> torch.dtype:
    """The mixed-precision type for `device`: float16 (with gradient scaling), on CUDA only.

    Raises InvalidParameterError on any other device (the CPU included), before any data is read, rather
    than silently training in float32 or in a CPU half-precision type nobody asked for."""
    device = torch.device(device)
    if device.type != "cuda":
        raise InvalidParameterError(
            f"--amp (mixed precision) runs on CUDA only and the device is {device}: drop --amp"
        )
    return torch.float16


def reproduce_command(config: TrainConfig, out) -> str:
    """The `anisocert train` command line that reproduces this run (options that differ from the defaults,
    plus the ones that name the run)."""
    from dataclasses import fields

    always = {"arch", "data", "method", "sigma", "epochs", "seed"}
    parts = ["anisocert", "train"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in EXECUTION_ONLY or (f.name not in always and value == f.default):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            parts += [flag, repr(value) if isinstance(value, float) else str(value)]
    weights = str(out)
    return " ".join(
        [*parts, "--out", weights[: -len(".safetensors")] if weights.endswith(".safetensors") else weights]
    )


# -- progress ---------------------------------------------------------------------------------------


class _Bar:
    """A transient rich progress bar over an epoch's batches, on stderr when it is a terminal; else silent."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.total, self.label = total, label
        self.console = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            self.console = console if console.is_terminal else None

    def __enter__(self):
        if self.console is None:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task(self.label, total=self.total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc):
        if self.console is not None:
            self._progress.stop()
        return False
