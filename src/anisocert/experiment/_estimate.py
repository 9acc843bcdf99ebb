"""Dry-run estimates: forward and backward passes per step, and time at the measured throughput."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..run.config import CertifyConfig
from ..train import OBJECTIVES
from ._step import Step

__all__ = ["Estimate", "BACKWARD_COST", "data_sizes", "measure_throughput", "estimate_plan", "format_plan"]

BACKWARD_COST = 2.0  # a backward pass costs about two forward passes (time estimates only)
_STANDARD_SIZES = {"cifar10": (50_000, 10_000), "imagenet": (1_281_167, 50_000)}


@dataclass(frozen=True)
class Estimate:
    """A step's cost: forward and backward passes of the model, and seconds at the measured throughput."""

    step: Step
    done: bool
    forward: float
    backward: float
    seconds: float | None
    note: str = ""


def data_sizes(spec: str) -> tuple[int, int, bool]:
    """(train inputs, test inputs, exact). CIFAR-10 folders are read when present; ImageNet uses the
    standard sizes (listing 1.3 million files would take longer than the estimate is worth)."""
    from ..data import load_data

    name, _, root = spec.partition(":")
    if name == "imagenet" or (name == "cifar10" and not (Path(root) / "cifar-10-batches-py").is_dir()):
        train, test = _STANDARD_SIZES[name]
        return train, test, False
    return len(load_data(spec, "train")), len(load_data(spec, "test")), True


def measure_throughput(arch: str, device=None, *, num_classes: int | None = None) -> float:
    """Forward passes per second of `arch` on `device` (default: CUDA when present), from a short timed
    run on random inputs (a warm-up call, then at least 0.3 s of batches)."""
    import torch

    from ..models import create_model
    from ..train import resolve_device

    device = resolve_device(device)
    model = create_model(arch, num_classes=num_classes).to(device).eval()
    dim = math.prod(model.input_shape)
    if device.type == "cuda":
        batch = 256 if dim < 10_000 else 64
    else:  # large enough to use the CPU well, small enough to take about a second
        batch = 1024 if dim < 1_000 else 32 if dim < 10_000 else 4
    x = torch.rand(batch, *model.input_shape, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        model(x[:2])
        sync()
        count, start = 0, time.perf_counter()
        while count == 0 or (time.perf_counter() - start < 0.3 and count < 20 * batch):
            model(x)
            count += batch
        sync()
    return count / (time.perf_counter() - start)


def _certify_passes(c: CertifyConfig) -> tuple[float, float]:
    """(forward, backward) passes per input for one certify run."""
    b, iso, an = c.budget, c.sigma_search, c.theta_search
    forward, backward = float(b.n0 + b.n), 0.0
    if c.method != "fixed":
        if iso.method == "gradient":
            forward, backward = forward + iso.iterations * iso.samples, iso.iterations * iso.samples
        else:  # the searches: (grid points + 3 + refinements) evaluations, forward only
            forward += (iso.grid_points + 3 + iso.refine_steps) * iso.samples
    if c.method == "ancer":
        second = {"both": b.n0 + b.n, "select": b.n0, "off": 0}[c.fallback]  # the isotropic draws
        forward += an.iterations * an.samples + second
        backward += an.iterations * an.samples
        if an.objective == "certified":  # the hard-vote repair: up to steps + 2 checks (+ the top-k path)
            forward += (an.check_steps + 2) * an.check_samples
    return forward, backward


def estimate_plan(
    steps: Sequence[Step], *, device=None, throughput: dict[str, float] | None = None
) -> list[Estimate]:
    """Forward/backward passes of every step and the time they take at each architecture's measured
    forward throughput on `device` (a backward pass counted as BACKWARD_COST forward passes)."""
    from ..data import select_indices

    throughput = throughput if throughput is not None else {}
    sizes: dict[str, tuple[int, int, bool]] = {}
    estimates = []
    for step in steps:
        done = step.done()
        if step.kind in ("import", "report", "pictures"):
            estimates.append(Estimate(step, done, 0.0, 0.0, 0.0))
            continue
        data = step.train.data if step.kind == "train" else step.certify.data
        if data not in sizes:
            sizes[data] = data_sizes(data)
        n_train, n_test, exact = sizes[data]
        if step.kind == "train":
            c = step.train
            passes = c.epochs * n_train * OBJECTIVES[c.method].passes(c)
            forward, backward = passes + 5.0 * n_test, passes  # + held-out evaluation (clean + 4 noisy draws)
            note = f"{c.epochs} epochs x {n_train} inputs"
        else:
            c = step.certify
            count = len(select_indices(n_test, skip=c.skip, max_count=c.max_count, indices=c.indices))
            per_input = _certify_passes(c)
            forward, backward = count * per_input[0], count * per_input[1]
            note = f"{count} inputs"
        if not exact:
            note += " (standard data-set size)"
        if step.arch not in throughput:
            throughput[step.arch] = measure_throughput(step.arch, device)
        seconds = (forward + BACKWARD_COST * backward) / throughput[step.arch]
        estimates.append(Estimate(step, done, forward, backward, seconds, note))
    return estimates


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def format_plan(
    estimates: Sequence[Estimate], *, device: str, throughput: dict[str, float] | None = None
) -> str:
    """The dry-run listing: one line per step (status, kind, name, passes, time) and the totals."""
    lines = [f"device: {device}"]
    for arch, rate in sorted((throughput or {}).items()):
        lines.append(
            f"measured forward throughput of {arch}: {rate:,.0f} inputs/s (backward = {BACKWARD_COST:g} x)"
        )
    lines.append(
        f"{'#':>3}  {'status':<6} {'kind':<8} {'step':<28} {'forward':>10} {'backward':>10} {'time':>9}  note"
    )
    todo = [e for e in estimates if not e.done]
    for i, e in enumerate(estimates, 1):
        lines.append(
            f"{i:>3}  {'done' if e.done else 'to do':<6} {e.step.kind:<8} {e.step.name:<28} "
            f"{e.forward:>10.3g} {e.backward:>10.3g} {_duration(e.seconds or 0.0):>9}  {e.note}"
        )
    total = sum(e.seconds or 0.0 for e in todo)
    lines.append(
        f"{len(todo)} of {len(estimates)} steps to do: {sum(e.forward for e in todo):.3g} forward and "
        f"{sum(e.backward for e in todo):.3g} backward passes, about {_duration(total)} on {device}"
    )
    return "\n".join(lines)
