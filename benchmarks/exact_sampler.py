"""The exact sampler against the float sampler (issue 22): certification time side by side, and the sampler's
share of it (CPU time of the process; the sampler's share of the wall time). A benchmark, not a test: prints medians and ratios.

    python benchmarks/exact_sampler.py [--repeats 3] [--threads 1]

Cases (CPU): the shipped digits model on digits inputs (grid 1/16), and cifar_resnet20 (random weights: the
time does not depend on them) on CIFAR-shaped 8-bit inputs (grid 1/255). Both certify with Smoothed.certify
(early stop off, so both samplers draw the same number of draws), the samplers alternating repeat by repeat
so that the machine's load moves both alike. The sampler's share: the time spent in _Streams.write (the
noise and the noisy inputs) over the whole certification.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from anisocert import create_model, load_data, load_model
from anisocert.core import sampling
from anisocert.core.exact import ExactSampler
from anisocert.core.smooth import Smoothed

_WRITE = sampling._Streams.write
_SPENT = [0.0]


def _timed_write(self, *args):
    start = time.perf_counter()
    _WRITE(self, *args)
    _SPENT[0] += time.perf_counter() - start


def _cases():
    digits = load_data("digits")
    model = load_model("builtin:digits-gaussian", device="cpu").module
    x = digits.get(np.arange(0, 540, 27))  # 20 inputs
    yield "digits (1x8x8), 20 inputs, n = 10,000", model, x, 16, 10_000, 1000
    torch.manual_seed(0)
    net = create_model("cifar_resnet20", num_classes=10).eval()
    pixels = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    yield "cifar_resnet20 (3x32x32), 2 inputs, n = 1,000", net, pixels.float() / 255, 255, 1_000, 250


def _certify(model, x, levels, n, batch, exact: bool) -> tuple[float, float]:
    """(CPU seconds of this process, share of the wall time in the sampler) of one certification of x at
    sigma 0.25. CPU time, not wall time: the machine may be shared, and other jobs stretch wall time."""
    sampler = ExactSampler(levels) if exact else None
    smoothed = Smoothed(model, "gaussian", batch_size=batch, device="cpu", sampler=sampler)
    _SPENT[0] = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    smoothed.certify(x, 0.25, n0=100, n=n, alpha=0.001, idx=np.arange(len(x)), early_stop=False)
    total = time.perf_counter() - start
    return time.process_time() - cpu, _SPENT[0] / total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sampling._Streams.write = _timed_write
    print("| case | float CPU s | exact CPU s | ratio exact / float | sampler share float | sampler share exact |")
    print("|---|---|---|---|---|---|")
    for name, model, x, levels, n, batch in _cases():
        _certify(model, x[:1], levels, 200, batch, True)  # warm up (and build the table once)
        runs = {False: [], True: []}
        for _ in range(args.repeats):
            for exact in (False, True):
                runs[exact].append(_certify(model, x, levels, n, batch, exact))
        med = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
        share = {k: statistics.median(s for _, s in v) for k, v in runs.items()}
        print(
            f"| {name} | {med[False]:.2f} | {med[True]:.2f} | {med[True] / med[False]:.2f} | "
            f"{share[False]:.0%} | {share[True]:.0%} |"
        )


if __name__ == "__main__":
    main()
