"""Forward-pass variants on CPU (issue 25): their speed, and whether they keep the classifier's arithmetic.

    python benchmarks/forward_variants.py [--models lenet,resnet18] [--repeats 5]

For each model (random weights, one torch thread, malloc keeping freed memory): the plain forward pass,
channels-last weights and inputs (the command line's `--channels-last`), and `torch.jit.trace` +
`torch.jit.optimize_for_inference`; for each, whether its scores equal the plain pass's bit for bit (and
the largest difference), whether the argmax agrees, and the CPU time per draw (fastest of the repeats,
the variants alternating).
"""

from __future__ import annotations

import argparse
import resource
import warnings

import torch

from anisocert import create_model, keep_freed_memory

MODELS = {"lenet": ("lenet", (1, 28, 28), 1000), "resnet18": ("cifar_resnet18", (3, 32, 32), 250)}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def variants(model, z):
    """name -> (callable, input layout)."""
    plain = lambda t: t  # noqa: E731
    last = lambda t: t.contiguous(memory_format=torch.channels_last)  # noqa: E731
    cl = create_model(model.arch, **model.arch_options).eval()
    cl.load_state_dict(model.state_dict())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.optimize_for_inference(torch.jit.trace(model, z[:8]))
    return {
        "plain": (model, plain),
        "channels-last": (cl.to(memory_format=torch.channels_last), last),
        "jit.optimize_for_inference": (frozen, plain),
    }


def measure(name: str, repeats: int) -> None:
    arch, shape, batch = MODELS[name]
    torch.manual_seed(0)
    model = create_model(arch).eval()
    z = torch.rand(batch, *shape) + 0.25 * torch.randn(batch, *shape)
    runs = variants(model, z)
    times = {k: [] for k in runs}
    with torch.inference_mode():
        ref = model(z)
        for k, (m, layout) in runs.items():
            out = m(layout(z))
            print(
                f"{name} {k}: bit-identical {torch.equal(out, ref)}, max |diff| {(out - ref).abs().max():.1e}, "
                f"argmax agrees on {(out.argmax(1) == ref.argmax(1)).float().mean():.2%}"
            )
        for _ in range(repeats):
            for k, (m, layout) in runs.items():
                zz = layout(z)
                m(zz)
                start = _cpu()
                m(zz).argmax(1)
                m(zz).argmax(1)
                times[k].append((_cpu() - start) / (2 * batch))
    base = min(times["plain"])
    for k, v in times.items():
        print(f"{name} {k}: {min(v) * 1e6:.1f} us/draw (batch {batch}), {min(v) / base:.3f}x the plain pass")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(1)
    for name in args.models.split(","):
        measure(name, args.repeats)


if __name__ == "__main__":
    main()
