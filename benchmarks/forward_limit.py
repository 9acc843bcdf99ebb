"""Certification against the machine's real forward limit on CPU (issue 25).

    python benchmarks/forward_limit.py [--models digits,lenet,resnet18] [--n 100000] [--repeats 3]
        [--channels-last] [--out FILE]

The limit of a model is the best plain loop this machine gives it: fresh Gaussian draws (into a buffer
made once), the forward pass and the argmax (what certification must do at the least), with malloc keeping
freed memory (anisocert/_allocator.py), at the best of several batch sizes. Certification's cost per input
is `Smoothed.certify` of one input (fixed sigma, n0 = 100 selection draws + N draws, no early stop), with
the float sampler and with the exact sampler (the default on data with a grid: a grid of 255 levels here),
compared with (N + n0) draws at the limit.

This machine's speed moves by 10-30% between identical timings (shared virtual cores), more than the
differences to be measured. So the loop and certify alternate, repeat by repeat, in one process, and two
figures are reported:

- the ratio of the fastest repeats (certify / limit), and
- the split of certify's own time between the model's forward passes and everything else (noise, copies,
  argmax, counting), measured inside the same call by timing each forward pass: a ratio of two parts of
  one run, which the machine's speed moves far less. The loop's own share outside the forward pass
  (its noise) is given beside it: at equal forward speed, certify costs the loop's time x (1 - loop's share) /
  (1 - certify's share).

--channels-last runs the loop and certify (`Smoothed(..., channels_last=True)`, the command line's
`--channels-last`) with channels-last weights and inputs: on this CPU a different convolution path, whose
scores differ from the default layout's in the last bits.

Each model is measured in a fresh process with malloc's defaults (ANISOCERT_KEEP_FREED_MEMORY=0) and in
another with freed memory kept. CPU time (user + system, of the process) is the figure; peak resident
memory (ru_maxrss) of each process is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

BATCHES = (250, 500, 1000, 2000)
SIGMA, N0, LEVELS = 0.25, 100, 255
# model name -> (anisocert architecture, input shape, draws per batch-size probe)
MODELS = {
    "digits": ("digits_cnn", (1, 8, 8), 50_000),
    "lenet": ("lenet", (1, 28, 28), 10_000),
    "resnet18": ("cifar_resnet18", (3, 32, 32), 1_000),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _TimedForward:
    """The model, with the CPU time of its forward passes added up (certify's split of its time)."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0

    def __call__(self, z):
        start = _cpu()
        out = self.model(z)
        self.seconds += _cpu() - start
        return out


def _layout(z, channels_last: bool):
    import torch

    return z.contiguous(memory_format=torch.channels_last) if channels_last and z.ndim == 4 else z


def plain_loop(model, shape, batch: int, draws: int, channels_last: bool = False) -> tuple[float, float]:
    """(CPU seconds per draw, share outside the forward pass) of the plain loop: draws into a buffer made
    once (randn, then x + sigma * u in place), forward, argmax."""
    import torch

    x = torch.rand(*shape)
    u, z = torch.empty(batch, *shape), torch.empty(batch, *shape)
    forward = _TimedForward(model)

    def one_pass():
        torch.randn(batch, *shape, out=u)
        torch.add(x, u, alpha=SIGMA, out=z)
        forward(_layout(z, channels_last)).argmax(1)

    with torch.inference_mode():
        one_pass()  # warm-up
        forward.seconds = 0.0
        passes = max(1, draws // batch)
        start = _cpu()
        for _ in range(passes):
            one_pass()
        total = _cpu() - start
    return total / (passes * batch), 1 - forward.seconds / total


def certify_one(
    model, shape, batch: int, n: int, sampler, idx: int, channels_last: bool = False
) -> tuple[float, float]:
    """(CPU seconds, share outside the forward passes) of Smoothed.certify of one input."""
    import torch

    from anisocert import Smoothed

    forward = _TimedForward(model)
    smoothed = Smoothed(
        forward, "gaussian", batch_size=batch, device="cpu", sampler=sampler, channels_last=channels_last
    )
    x = torch.randint(0, LEVELS + 1, (1, *shape), generator=torch.Generator().manual_seed(idx)) / LEVELS
    start = _cpu()
    smoothed.certify(x, SIGMA, n0=N0, n=n, idx=[idx], early_stop=False)
    total = _cpu() - start
    return total, 1 - forward.seconds / total


def measure(name: str, n: int, threads: int, repeats: int, channels_last: bool = False) -> dict:
    """One model in this process: the best batch, then loop and certify alternating `repeats` times."""
    import torch

    from anisocert import create_model, keep_freed_memory
    from anisocert.core.exact import ExactSampler

    kept = keep_freed_memory()
    torch.set_num_threads(threads)
    arch, shape, probe = MODELS[name]
    model = create_model(arch).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cl = channels_last
    probes = {b: plain_loop(model, shape, b, probe, cl)[0] for b in BATCHES}
    batch = min(probes, key=probes.get)
    samplers = {"float": None, "exact": ExactSampler(LEVELS)}
    for s in samplers.values():  # warm-up (and the exact sampler's table)
        certify_one(model, shape, batch, batch, s, 0, cl)
    loops, certs = [], {k: [] for k in samplers}
    for r in range(repeats):
        per_draw, outside = plain_loop(model, shape, batch, n, cl)
        loops.append((per_draw * (n + N0), outside))
        for k, s in samplers.items():
            certs[k].append(certify_one(model, shape, batch, n, s, r + 1, cl))
    limit = min(t for t, _ in loops)
    out = {
        "model": name + (" (channels-last)" if cl else ""),
        "n": n,
        "kept": kept,
        "batch": batch,
        "repeats": repeats,
        "limit": limit,
        "limit_spread": [min(t for t, _ in loops), max(t for t, _ in loops)],
        "loop_outside": statistics.median(o for _, o in loops),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for k, runs in certs.items():
        best = min(t for t, _ in runs)
        outside = statistics.median(o for _, o in runs)
        out[k] = {
            "certify": best,
            "spread": [best, max(t for t, _ in runs)],
            "ratio": best / limit,
            "outside": outside,
            "split_ratio": (1 - out["loop_outside"]) / (1 - outside),
        }
    return out


def _in_fresh_process(name: str, n: int, threads: int, repeats: int, keep: bool, cl: bool) -> dict:
    env = {**os.environ, "ANISOCERT_KEEP_FREED_MEMORY": "1" if keep else "0"}
    args = [sys.executable, __file__, "--one", name, "--n", str(n), "--threads", str(threads)]
    args += ["--repeats", str(repeats)] + (["--channels-last"] if cl else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


HEADER = (
    "| model | malloc | batch | limit: loop x (N + n0), CPU s [fastest-slowest] | sampler "
    "| certify, CPU s [fastest-slowest] | certify / limit, fastest | outside forward: certify / loop "
    "| certify / limit from the split | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|"
)


def rows_of(r: dict) -> list[str]:
    malloc = "keeps freed memory" if r["kept"] else "defaults"
    lo, hi = r["limit_spread"]
    lines = []
    for k in ("float", "exact"):
        c = r[k]
        lines.append(
            f"| {r['model']}, N = {r['n']:,} | {malloc} | {r['batch']} | {lo:.2f} [{lo:.2f}-{hi:.2f}] | {k} "
            f"| {c['spread'][0]:.2f} [{c['spread'][0]:.2f}-{c['spread'][1]:.2f}] | {c['ratio']:.3f}x "
            f"| {c['outside']:.1%} / {r['loop_outside']:.1%} | {c['split_ratio']:.3f}x "
            f"| {r['maxrss_mb']:,.0f} MB |"
        )
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="digits,lenet,resnet18")
    parser.add_argument("--n", type=int, default=100_000, help="draws per input (resnet18: see --resnet-n)")
    parser.add_argument("--resnet-n", type=int, default=2_000, help="draws per input on the ResNet-18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true", help="channels-last weights and inputs")
    parser.add_argument(
        "--defaults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure with malloc's defaults (a second process per model)",
    )
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: one model
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.n, args.threads, args.repeats, args.channels_last)))
        return
    lines = [
        f"n0 = {N0}, fixed sigma {SIGMA}, {args.threads} torch thread(s), {args.repeats} repeats, CPU; "
        "command: `python benchmarks/forward_limit.py`.",
        "",
        HEADER,
    ]
    print("\n".join(lines), flush=True)
    for name in args.models.split(","):
        n = args.resnet_n if name == "resnet18" else args.n
        for keep in (False, True) if args.defaults else (True,):
            new = rows_of(_in_fresh_process(name, n, args.threads, args.repeats, keep, args.channels_last))
            print("\n".join(new), flush=True)
            lines += new
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
