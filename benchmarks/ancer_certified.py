"""Issue 15: ANCER's certified objective side by side with the isotropic run and fixed sigma (benchmark).

Runs the whole pipeline (``certify_dataset``: optimisation, certification, memory) on the same inputs and
seed for: fixed sigma, the isotropic run (votes search), and ancer with each objective and fallback asked
for. Prints one markdown table per noise: seconds per input (load-normalised by a forward-throughput probe
around each run), ACR, ACR proxy, the proxy gain over the isotropic run, the share of anisotropic
certificates kept, the share of inputs whose radius is at least the isotropic run's, and certified
accuracy on the standard grid; then the targets of issue 15.

    python benchmarks/ancer_certified.py --noise gaussian --skip 5 --n 10000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from anisocert.core.metrics import L1_GRID, L2_CIFAR_GRID
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from anisocert.run.store import RunStore

MODELS = {"gaussian": ("builtin:digits-gaussian", 0.25), "uniform": ("builtin:digits-uniform", 0.5)}


def _throughput(model_spec: str, batch: int = 2000, reps: int = 3) -> float:
    """Forward passes per second of the model on noisy digits-shaped inputs (argmax included)."""
    from anisocert.models import load_model

    model = load_model(model_spec).module.eval()
    x = torch.rand(batch, 1, 8, 8)
    with torch.inference_mode():
        model(x).argmax(1)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x).argmax(1)
    return reps * batch / (time.perf_counter() - t0)


def _run(name: str, config: CertifyConfig, out: Path) -> dict:
    """Certify; returns the records' arrays, the run's seconds per input and the load probe around it."""
    probe = _throughput(config.model)
    t0 = time.perf_counter()
    certify_dataset(config, out / name, progress=False)
    seconds = time.perf_counter() - t0
    probe = (probe + _throughput(config.model)) / 2
    store = RunStore.read(out / name)
    try:
        raw, reported = store.certificates(), store.reported()
    finally:
        store.close()
    radius, proxy, correct = reported.radius, reported.proxy_radius, reported.correct
    records = raw.rows()
    return dict(
        idx=np.array([r.idx for r in records]),
        radius=radius * correct,
        proxy=proxy * correct,
        fallback=np.array([r.fallback for r in records]),
        seconds=seconds / len(records),
        normalised=seconds / len(records) * probe,
        opt=float(np.mean([r.opt_time for r in records])),
    )


def _row(name, run, iso, fixed, grid, method) -> str:
    ca = [np.mean(run["radius"] >= g) for g in grid]
    gain = run["proxy"].mean() / iso["radius"].mean()
    kept = "-" if method != "ancer" else f"{1 - run['fallback'].mean():.2f}"
    superset = np.mean(run["radius"] >= iso["radius"] - 1e-9)
    cost = run["normalised"] / fixed["normalised"]
    cells = [
        name,
        f"{run['seconds']:.2f} s",
        f"{cost:.2f}x",
        f"{run['radius'].mean():.4f}",
        f"{run['proxy'].mean():.4f}",
        f"{gain:.3f}x",
        kept,
        f"{superset:.2f}",
    ] + [f"{v:.3f}" for v in ca]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", default="gaussian", choices=sorted(MODELS))
    parser.add_argument("--skip", type=int, default=5)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/issue15"))
    parser.add_argument("--variants", default="certified:select,certified:both,paper:select,paper:both")
    parser.add_argument("--ancer", default="{}", help="JSON of extra ancer config fields")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, sigma = MODELS[args.noise]
    out = args.out / f"{args.noise}-n{args.n}-skip{args.skip}"
    common = dict(
        model=model,
        data="digits",
        noise=args.noise,
        sigma=sigma,
        n0=args.n0,
        n=args.n,
        skip=args.skip,
        seed=0,
        iso_method="votes",
        batch_size=2000,
        inputs_per_batch=20,
    )
    runs = {"fixed": _run("fixed", CertifyConfig.from_flat(method="fixed", **common), out)}
    runs["isotropic"] = _run("isotropic", CertifyConfig.from_flat(method="isotropic", **common), out)
    extra = json.loads(args.ancer)
    for variant in args.variants.split(","):
        objective, fallback = variant.split(":")
        config = CertifyConfig.from_flat(
            method="ancer", ancer_objective=objective, fallback=fallback, **common, **extra
        )
        runs[f"ancer {objective}, {fallback}"] = _run(f"ancer-{objective}-{fallback}", config, out)
    grid = L2_CIFAR_GRID if args.noise == "gaussian" else L1_GRID
    head = ["run", "s per input", "cost vs fixed (load-normalised)", "ACR", "ACR proxy", "proxy / iso ACR"]
    head += ["kept", "radius >= iso run"] + [f"CA({g:g})" for g in grid]
    print(
        f"\n{args.noise}: {len(runs['fixed']['idx'])} inputs (every {args.skip}th), n = {args.n}, n0 = {args.n0}"
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, run in runs.items():
        method = name.split()[0]
        print(_row(name, run, runs["isotropic"], runs["fixed"], grid, method))


if __name__ == "__main__":
    main()
