"""Certification against the machine's real forward limit on CPU (issue 25).

    python benchmarks/forward_limit.py [--models digits,lenet,resnet18] [--n 100000] [--out FILE]

The limit of a model is the best plain loop this machine gives it: fresh Gaussian draws (into a buffer
made once), the forward pass and the argmax (what certification must do at the least), with malloc keeping
freed memory
(anisocert/_allocator.py), at the best of several batch sizes. Certification's marginal cost per input is
the slope of `Smoothed.certify`'s time over the number of inputs ((t(3 inputs) - t(1 input)) / 2: fixed
sigma, N draws and n0 = 100, no early stop), compared with (N + n0) draws at the limit. Each model is
measured twice, in a fresh process each: with malloc's defaults (ANISOCERT_KEEP_FREED_MEMORY=0) and
with freed memory kept, so that the before and after stand side by side. CPU time (user + system, of the
process) is the figure that the load of other work on a shared machine moves least; wall time is
reported beside it. Peak resident memory (ru_maxrss) of each process is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BATCHES = (250, 500, 1000, 2000)
SIGMA, N0 = 0.25, 100
# model name -> (anisocert architecture, input shape, draws per loop timing)
MODELS = {
    "digits": ("digits_cnn", (1, 8, 8), 100_000),
    "lenet": ("lenet", (1, 28, 28), 20_000),
    "resnet18": ("cifar_resnet18", (3, 32, 32), 2_000),
}


def _clock() -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, time.perf_counter()


def _since(start) -> tuple[float, float]:
    cpu, wall = _clock()
    return cpu - start[0], wall - start[1]


def plain_loop(model, shape, batch: int, draws: int, noise: bool = True) -> tuple[float, float]:
    """(CPU, wall) seconds per draw of the plain loop: draws into a buffer made once (randn, then
    x + sigma * u in place), forward, argmax. noise=False: the forward pass and argmax alone."""
    import torch

    x = torch.rand(*shape)
    u, z = torch.empty(batch, *shape), torch.empty(batch, *shape)
    torch.add(x, u.normal_(), alpha=SIGMA, out=z)

    def one_pass():
        if noise:
            torch.randn(batch, *shape, out=u)
            torch.add(x, u, alpha=SIGMA, out=z)
        model(z).argmax(1)

    with torch.inference_mode():
        one_pass()  # warm-up
        passes = max(1, draws // batch)
        start = _clock()
        for _ in range(passes):
            one_pass()
        cpu, wall = _since(start)
    return cpu / (passes * batch), wall / (passes * batch)


def certify_slope(model, shape, batch: int, n: int) -> tuple[float, float]:
    """(CPU, wall) seconds of Smoothed.certify per additional input: (t(3) - t(1)) / 2."""
    import torch

    from anisocert import Smoothed

    smoothed = Smoothed(model, "gaussian", batch_size=batch, device="cpu")
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    smoothed.certify(x[:1], SIGMA, n0=N0, n=2 * batch, early_stop=False)  # warm-up
    times = {}
    for k in (1, 3):
        start = _clock()
        smoothed.certify(x[:k], SIGMA, n0=N0, n=n, idx=list(range(k)), early_stop=False)
        times[k] = _since(start)
    return tuple((times[3][i] - times[1][i]) / 2 for i in (0, 1))


def measure(name: str, n: int, threads: int) -> dict:
    """One model in this process: the limit (best batch) and certification's marginal cost per input."""
    import torch

    from anisocert import create_model, keep_freed_memory

    kept = keep_freed_memory()
    torch.set_num_threads(threads)
    arch, shape, draws = MODELS[name]
    model = create_model(arch).eval()
    loops = {b: plain_loop(model, shape, b, draws) for b in BATCHES}
    best = min(loops, key=lambda b: loops[b][0])
    forward = plain_loop(model, shape, best, draws, noise=False)
    cert = certify_slope(model, shape, best, n)
    limit = tuple(v * (n + N0) for v in loops[best])
    return {
        "model": name,
        "kept": kept,
        "batch": best,
        "loop_cpu_per_draw": {b: v[0] for b, v in loops.items()},
        "limit": limit,
        "certify": cert,
        "noise_share": 1 - forward[0] / loops[best][0],
        "ratio_cpu": cert[0] / limit[0],
        "ratio_wall": cert[1] / limit[1],
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_fresh_process(name: str, n: int, threads: int, keep: bool) -> dict:
    env = {**os.environ, "ANISOCERT_KEEP_FREED_MEMORY": "1" if keep else "0"}
    args = [sys.executable, __file__, "--one", name, "--n", str(n), "--threads", str(threads)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(rows: list[dict], n: int, threads: int) -> str:
    lines = [
        f"N = {n:,} draws (+ n0 = {N0}) per input, fixed sigma {SIGMA}, {threads} torch thread(s), CPU; "
        "command: `python benchmarks/forward_limit.py`.",
        "",
        "| model | malloc | best batch | limit (s/input, CPU / wall) | certify (s/input, CPU / wall) "
        "| certify / limit (CPU / wall) | noise's share of the limit | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        malloc = "keeps freed memory" if r["kept"] else "defaults"
        lines.append(
            f"| {r['model']} | {malloc} | {r['batch']} | {r['limit'][0]:.2f} / {r['limit'][1]:.2f} "
            f"| {r['certify'][0]:.2f} / {r['certify'][1]:.2f} | {r['ratio_cpu']:.3f}x / "
            f"{r['ratio_wall']:.3f}x | {r['noise_share']:.0%} | {r['maxrss_mb']:,.0f} MB |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="digits,lenet,resnet18")
    parser.add_argument("--n", type=int, default=100_000, help="draws per input (resnet18: see --resnet-n)")
    parser.add_argument("--resnet-n", type=int, default=2_000, help="draws per input on the ResNet-18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: one model
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.n, args.threads)))
        return
    rows = []
    for name in args.models.split(","):
        n = args.resnet_n if name == "resnet18" else args.n
        for keep in (False, True):
            rows.append(_in_fresh_process(name, n, args.threads, keep))
            print(report(rows[-1:], n, args.threads).splitlines()[-1], flush=True)
    text = "\n\n".join(
        report(
            [r for r in rows if r["model"] == name],
            args.resnet_n if name == "resnet18" else args.n,
            args.threads,
        )
        for name in args.models.split(",")
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
