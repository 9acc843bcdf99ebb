"""What every benchmark section shares: the settings of each mode, the constants, timing helpers and the
throughput probe that defines the limit."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

SIGMA = 0.25  # training sigma of the shipped digits model; sigma0 of every optimiser
ALPHA = 0.001
N0 = 100
N_TARGET = 100_000  # the N of the pipeline target
PUBLIC = {"sigma_it": 900, "theta_it": 100, "search_draws": 1000}  # defaults the tables scale to


@dataclass(frozen=True)
class Settings:
    """What one mode runs. Optimiser timings taken at fewer iterations than the defaults are scaled
    linearly to them (every iteration costs the same forward and backward passes)."""

    reps: int  # repetitions of each certification timing
    digits_inputs: int  # digits inputs for the certification and optimiser timings
    digits_n: int
    resnet_inputs: int
    resnet_n: int
    digits_sigma_it: int  # gradient iterations timed (anisocert and ddsmoothing)
    digits_theta_it: int  # Adam iterations timed (anisocert and ancer-python)
    resnet_sigma_it: int
    resnet_theta_it: int
    resnet_search_draws: int  # draws of the sigma search timed on the ResNet (scaled to 1000)
    pipeline_inputs: int  # digits test inputs of the whole-pipeline comparison, at N = pipeline_n
    pipeline_n: int
    iso_inputs: int  # digits test inputs of the isotropic comparison (search vs public gradient)
    iso_n: int  # N used to certify their sigmas
    cifar_inputs: int  # test inputs of the isotropic comparison on the CIFAR-shaped (3x32x32) digits model
    cifar_n: int  # N used to certify their sigmas
    memory_regions: int
    memory_seeds: int
    fallback_row: bool  # also time the votes ANCER pipeline with each fallback (both, select)
    public_iterations: tuple[int, int] = (PUBLIC["sigma_it"], PUBLIC["theta_it"])  # of the public pipeline


FULL = Settings(
    reps=3,
    digits_inputs=8,
    digits_n=100_000,
    resnet_inputs=2,
    resnet_n=10_000,
    digits_sigma_it=900,
    digits_theta_it=100,
    resnet_sigma_it=100,
    resnet_theta_it=100,
    resnet_search_draws=1000,
    pipeline_inputs=20,
    pipeline_n=100_000,
    iso_inputs=20,
    iso_n=100_000,
    cifar_inputs=20,
    cifar_n=100_000,
    memory_regions=10_000,
    memory_seeds=3,
    fallback_row=True,
)
QUICK = Settings(
    reps=5,
    digits_inputs=2,
    digits_n=20_000,
    resnet_inputs=1,
    resnet_n=2_000,
    digits_sigma_it=20,
    digits_theta_it=20,
    resnet_sigma_it=2,
    resnet_theta_it=2,
    resnet_search_draws=100,
    pipeline_inputs=2,
    pipeline_n=100_000,
    iso_inputs=6,
    iso_n=10_000,
    cifar_inputs=6,
    cifar_n=10_000,
    memory_regions=10_000,
    memory_seeds=1,
    fallback_row=True,
)
SMOKE = replace(  # checks that the script runs end to end in a few minutes; its figures mean nothing
    QUICK,
    reps=1,
    digits_n=1_000,
    resnet_n=200,
    digits_sigma_it=2,
    digits_theta_it=2,
    resnet_sigma_it=1,
    resnet_theta_it=1,
    resnet_search_draws=10,
    pipeline_n=1_000,
    iso_inputs=2,
    iso_n=1_000,
    cifar_inputs=2,
    cifar_n=1_000,
    memory_regions=500,
    public_iterations=(2, 2),
)


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def med(values) -> float:
    return statistics.median(list(values))


def spread(values, unit: str = " s", digits: int = 3) -> str:
    """'median [min-max]' (or the single value): what every timing cell shows."""
    values = list(values)
    m = f"{med(values):.{digits}g}{unit}"
    return m if len(values) == 1 else f"{m} [{min(values):.{digits}g}-{max(values):.{digits}g}]"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


class Report:
    """Markdown sections, each printed when done so that a long run shows its progress."""

    def __init__(self):
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.parts.append(text)


@dataclass
class Bench:
    """A model under test, the batch size it is run at and some inputs of its shape."""

    name: str
    module: torch.nn.Module
    batch_size: int
    x: torch.Tensor  # (B, *D)


def throughput(model, shape, batch_size: int, seconds: float = 1.5) -> float:
    """Forward samples/s at batch_size under inference_mode (argmax included), over about `seconds`.

    This is the limit's denominator: certification cannot beat N / throughput on this model and batch.
    """
    x = torch.rand(batch_size, *shape)
    with torch.inference_mode():
        model(x).argmax(1)  # warm-up (allocator, oneDNN primitives)
        passes, start = 0, time.perf_counter()
        while passes < 2 or time.perf_counter() - start < seconds:
            model(x).argmax(1)
            passes += 1
        return passes * batch_size / (time.perf_counter() - start)


def probed(bench: Bench, fn, *args, **kwargs) -> dict:
    """fn's result dict plus 'rate': the forward throughput probed before and after it (their mean)."""
    shape = tuple(bench.x.shape[1:])
    before = throughput(bench.module, shape, bench.batch_size)
    out = fn(*args, **kwargs)
    return dict(out, rate=(before + throughput(bench.module, shape, bench.batch_size)) / 2)


def quality(radius, proxy, correct) -> dict:
    """ACR, average certified proxy radius and certified accuracy at proxy radius 0, 0.5, 1.0."""
    radius, proxy = np.asarray(radius, float), np.asarray(proxy, float)
    good = np.asarray(correct, bool)
    return {
        "acr": float(np.mean(radius * good)),
        "acr_proxy": float(np.mean(proxy * good)),
        **{f"ca{r}": float(np.mean(good & (proxy >= r))) for r in (0.0, 0.5, 1.0)},
    }
