"""Speed of anisocert against the forward-throughput limit and the public implementations (issue 5).

    python benchmarks/run.py [--quick] [--out docs/benchmarks.md]

Everything runs on the CPU with the same models, inputs and settings for anisocert and for the public
code (``ddsmoothing-python``, ``ancer-python``; see benchmarks/public.py). A benchmark, not a test:
it asserts nothing and prints medians, spreads (min-max) and ratios, then writes a Markdown report.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import public_code as public  # benchmarks/ is on sys.path when this file runs as a script
import torch

from anisocert import (
    CertifyConfig,
    Smoothed,
    certify_dataset,
    create_model,
    load_data,
    load_model,
    optimise_sigma,
    optimise_theta,
)
from anisocert._memory_bench import memory_benchmark
from anisocert.models import LoadedModel

ROOT = Path(__file__).resolve().parents[1]

SIGMA = 0.25  # training sigma of the shipped digits model; sigma0 of every optimiser
ALPHA = 0.001
N0 = 100
DEFAULTS = {"sigma_gradient": 900, "theta": 100}  # public default iterations (100 samples each)


@dataclass(frozen=True)
class Settings:
    """What one mode runs. Iterations below the public defaults are scaled up linearly in the tables
    (each iteration costs the same: a fixed number of forward and backward passes)."""

    reps: int  # repetitions of each timing
    digits_inputs: int  # inputs for the digits micro-benchmarks
    digits_n: int  # N of the digits certification micro-benchmark
    digits_sigma_it: int  # gradient iterations (DDRS sigma) timed on digits
    resnet_inputs: int
    resnet_n: int
    resnet_sigma_it: int
    resnet_theta_it: int
    resnet_search_samples: int
    pipeline_inputs: int  # digits inputs of the whole-pipeline comparison (N = pipeline_n)
    pipeline_n: int
    pipeline_reps: int
    iso_n: int  # N used to certify the two isotropic sigmas (anisocert search vs ddsmoothing)
    resnet_pipeline_n: int
    memory_regions: int
    memory_reps: int


FULL = Settings(
    reps=3,
    digits_inputs=8,
    digits_n=100_000,
    digits_sigma_it=900,
    resnet_inputs=2,
    resnet_n=10_000,
    resnet_sigma_it=900,
    resnet_theta_it=100,
    resnet_search_samples=1000,
    pipeline_inputs=20,
    pipeline_n=100_000,
    pipeline_reps=3,
    iso_n=100_000,
    resnet_pipeline_n=10_000,
    memory_regions=10_000,
    memory_reps=3,
)
QUICK = Settings(
    reps=2,
    digits_inputs=4,
    digits_n=20_000,
    digits_sigma_it=100,
    resnet_inputs=2,
    resnet_n=2_000,
    resnet_sigma_it=5,
    resnet_theta_it=5,
    resnet_search_samples=200,
    pipeline_inputs=4,
    pipeline_n=100_000,
    pipeline_reps=1,
    iso_n=10_000,
    resnet_pipeline_n=2_000,
    memory_regions=10_000,
    memory_reps=1,
)
SMOKE = replace(  # checks that the script runs end to end in about a minute; its figures mean nothing
    QUICK,
    reps=1,
    digits_inputs=2,
    digits_n=2_000,
    digits_sigma_it=3,
    resnet_inputs=1,
    resnet_n=400,
    resnet_sigma_it=1,
    resnet_theta_it=1,
    resnet_search_samples=20,
    pipeline_inputs=2,
    pipeline_n=2_000,
    iso_n=2_000,
    resnet_pipeline_n=400,
    memory_regions=500,
)


# ------------------------------------------------------------------------------------------ helpers


def timed(fn, reps: int):
    """(seconds of each repetition, the last result); fn gets the repetition number (its seed)."""
    seconds, out = [], None
    for rep in range(reps):
        start = time.perf_counter()
        out = fn(rep)
        seconds.append(time.perf_counter() - start)
    return seconds, out


def fmt_s(values) -> str:
    """median [min-max] in seconds, or the single value."""
    values = list(values)
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3g} s"
    return f"{med:.3g} s [{min(values):.3g}-{max(values):.3g}]"


def med(values) -> float:
    return statistics.median(list(values))


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Collects Markdown sections; each is printed as soon as it is done (a long run shows progress)."""

    def __init__(self):
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.parts.append(text)


@dataclass
class Bench:
    """A model under test: its module, input shape, batch size and some inputs."""

    name: str
    module: torch.nn.Module
    batch_size: int
    x: torch.Tensor  # (inputs, *D)
    throughput: float = 0.0  # forward samples/s at batch_size


def throughput(model, shape, batch_size: int, reps: int) -> list[float]:
    """Forward samples/s at batch_size under inference_mode, each repetition about 2 s of passes."""
    x = torch.rand(batch_size, *shape)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        model(x)
        passes = max(1, int(2.0 / max(time.perf_counter() - start, 1e-6)))
        rates = []
        for _ in range(reps):
            start = time.perf_counter()
            for _ in range(passes):
                model(x).argmax(1)
            rates.append(passes * batch_size / (time.perf_counter() - start))
    return rates


# ----------------------------------------------------------------------------------------- sections


def certification(bench: Bench, n: int, reps: int, rep: Report) -> dict:
    """anisocert's Smoothed.certify (all inputs in one call) vs ddsmoothing's Smooth.certify (one by one)."""
    x, B = bench.x, bench.x.shape[0]
    limit = n / bench.throughput
    smoothed = Smoothed(bench.module, "gaussian", batch_size=bench.batch_size, device="cpu")
    idx = list(range(B))

    def ours(seed, theta=SIGMA):
        return smoothed.certify(x, theta, n0=N0, n=n, alpha=ALPHA, seed=seed, idx=idx)

    def theirs(seed):
        torch.manual_seed(seed)
        kw = dict(n0=N0, n=n, alpha=ALPHA, batch_size=bench.batch_size, num_classes=10)
        return public.certify(bench.module, x, SIGMA, **kw)

    t_ours, res = timed(ours, reps)
    t_theirs, _ = timed(theirs, reps)
    # an input whose outcome is an abstention: theta = 4 drowns the digits (a random ResNet predicts
    # one class whatever the noise, so it is not used there); the early stop shows here.
    t_abstain, abst = (None, None)
    if bench.name.startswith("digits"):
        t_abstain, abst = timed(lambda seed: ours(seed, theta=4.0), reps)
    per = [t / B for t in t_ours]
    per_pub = [t / B for t in t_theirs]
    rows = [
        [
            "anisocert `Smoothed.certify`",
            fmt_s(per),
            f"{med(per) / limit:.3f}x",
            f"{int((res.prediction < 0).sum())}/{B}",
        ],
        ["ddsmoothing `Smooth.certify`", fmt_s(per_pub), f"{med(per_pub) / limit:.3f}x", ""],
    ]
    if t_abstain is not None:
        per_abs = [t / B for t in t_abstain]
        rows.append(
            [
                "anisocert, theta = 4 (abstains)",
                fmt_s(per_abs),
                f"{med(per_abs) / limit:.3f}x",
                f"{int((abst.prediction < 0).sum())}/{B}",
            ]
        )
    rep.add(
        f"### Certification, {bench.name}: N = {n:,}, n0 = {N0}, {B} inputs, batch {bench.batch_size}, "
        f"{reps} repetitions\n\n"
        f"Forward throughput {bench.throughput:,.0f} samples/s (median), limit N / throughput = "
        f"{limit:.3g} s per input.\n\n"
        + table(["code", "s per input, median [min-max]", "ratio to limit", "abstained"], rows)
    )
    return {"limit": limit, "ours": med(per), "public": med(per_pub)}


def optimisation(bench: Bench, s: Settings, rep: Report, *, sigma_it: int, theta_it: int, search_samples):
    """DDRS sigma (gradient, search) and ANCER theta: anisocert vs ddsmoothing / ancer-python."""
    x, B, reps = bench.x, bench.x.shape[0], s.reps
    idx = list(range(B))
    kw = dict(idx=idx, batch_size=bench.batch_size)
    pub = public.public_model(bench.module)
    rows = []

    def row(work, settings, ours, theirs, scale):
        ours_pi = [t / B for t in ours]
        line = [work, settings, fmt_s(ours_pi), f"{med(ours_pi) * scale:.3g} s"]
        if theirs is None:
            return line + ["-", "-", "-"]
        theirs_pi = [t / B for t in theirs]
        ratio = med(theirs_pi) / med(ours_pi)
        return line + [fmt_s(theirs_pi), f"{med(theirs_pi) * scale:.3g} s", f"{ratio:.2f}x"]

    def sigma_grad(seed):
        return optimise_sigma(bench.module, "gaussian", x, SIGMA, iterations=sigma_it, seed=seed, **kw)

    def sigma_grad_public(seed):
        torch.manual_seed(seed)
        return public.dds_sigma(pub, x, SIGMA, sigma_it)

    t_ours, _ = timed(sigma_grad, reps)
    t_pub, _ = timed(sigma_grad_public, reps)
    scale = DEFAULTS["sigma_gradient"] / sigma_it
    rows.append(row("isotropic sigma, gradient (DDRS)", f"{sigma_it} it x 100", t_ours, t_pub, scale))

    search_kw = {} if search_samples is None else {"samples": search_samples}
    t_search, res = timed(
        lambda seed: optimise_sigma(
            bench.module, "gaussian", x, SIGMA, method="search", seed=seed, **search_kw, **kw
        ),
        reps,
    )
    samples = search_samples or 1000
    scale_search = 1000 / samples
    passes = int(res.forward_passes[0])
    rows.append(
        row(
            "isotropic sigma, search (anisocert)",
            f"{passes:,} fwd ({samples} draws)",
            t_search,
            None,
            scale_search,
        )
    )
    sigma = torch.full((B,), SIGMA)

    def theta(seed):
        return optimise_theta(bench.module, "gaussian", x, sigma, iterations=theta_it, seed=seed, **kw)

    def theta_public(seed):
        torch.manual_seed(seed)
        return public.ancer_theta(pub, x, sigma, theta_it)

    t_theta, _ = timed(theta, reps)
    t_theta_pub, _ = timed(theta_public, reps)
    scale = DEFAULTS["theta"] / theta_it
    rows.append(row("ANCER theta (Adam)", f"{theta_it} it x 100", t_theta, t_theta_pub, scale))
    rep.add(
        f"### Optimisation, {bench.name}: {B} inputs batched, {reps} repetitions\n\n"
        "'at defaults' scales the median linearly to the public defaults (900 gradient iterations, "
        "100 Adam iterations, 1000 draws for the search); it equals the measurement when the run used "
        "them.\n\n"
        + table(
            [
                "work (per input)",
                "run",
                "anisocert",
                "anisocert at defaults",
                "public",
                "public at defaults",
                "public / anisocert",
            ],
            rows,
        )
    )
    grad_ours = med(t_ours) / B * DEFAULTS["sigma_gradient"] / sigma_it
    grad_pub = med(t_pub) / B * DEFAULTS["sigma_gradient"] / sigma_it
    return {
        "sigma_gradient": grad_ours,
        "sigma_gradient_public": grad_pub,
        "search": med(t_search) / B * scale_search,
        "theta": med(t_theta) / B * DEFAULTS["theta"] / theta_it,
        "theta_public": med(t_theta_pub) / B * DEFAULTS["theta"] / theta_it,
    }


def memory(s: Settings, rep: Report) -> dict:
    """anisocert._memory_bench: certify (decide + add) of synthetic CIFAR-shaped ellipsoids."""
    runs = [memory_benchmark(s.memory_regions, 3072, "l2", seed=seed) for seed in range(s.memory_reps)]
    checkpoints = sorted(runs[0]["per_region_ms"])
    rows = [
        [
            f"{s.memory_regions:,} x 3,072 (l2)",
            fmt_s([r["seconds"] for r in runs]),
            *[f"{med([r['per_region_ms'][c] for r in runs]):.3f}" for c in checkpoints],
            ", ".join(f"{k} {v}" for k, v in sorted(runs[0]["statuses"].items())),
        ]
    ]
    header = [
        "regions",
        "total certify time",
        *[f"ms/cert at {c:,}" for c in checkpoints],
        "statuses (seed 0)",
    ]
    rep.add(
        f"### Memory-based certification at scale ({s.memory_reps} seeds)\n\n"
        "`anisocert._memory_bench.memory_benchmark`: one `CertificateMemory.certify` per region (decide "
        "+ store), centres uniform in [0, 1]^3072 with 1% placed near an earlier centre, theta uniform in "
        "[0.12, 0.5], gap in [0.1, 3.8]; only the certify calls are timed. 'ms/cert at M' is the mean "
        "cost of the 100 certificates added before the memory holds M.\n\n" + table(header, rows)
    )
    return {"seconds": med([r["seconds"] for r in runs])}


def _read_tsv(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text().strip().splitlines()
    head = lines[0].split("\t")
    cols = list(zip(*[line.split("\t") for line in lines[1:]]))
    out = {}
    for name, values in zip(head, cols):
        try:
            out[name] = np.array([float(v) for v in values])
        except ValueError:
            out[name] = np.array(values)
    return out


def quality(radius, proxy, correct) -> dict:
    """Average certified (proxy) radius and certified accuracy at proxy radius 0, 0.5, 1.0."""
    radius, proxy, correct = (np.asarray(v, dtype=float) for v in (radius, proxy, correct))
    good = correct > 0
    return {
        "acr": float(np.mean(radius * good)),
        "acr_proxy": float(np.mean(proxy * good)),
        **{f"ca{r}": float(np.mean(good & (proxy >= r))) for r in (0.0, 0.5, 1.0)},
    }


def run_pipeline(method: str, loaded, dataset, indices, n: int, seed: int, batch_size: int, **extra):
    """anisocert.certify_dataset in a fresh directory; (seconds per input, certify.tsv, nomemory tsv)."""
    config = CertifyConfig(
        model=loaded.description,
        data=dataset.spec,
        method=method,
        sigma=SIGMA,
        n0=N0,
        n=n,
        alpha=ALPHA,
        seed=seed,
        indices=tuple(int(i) for i in indices),
        batch_size=batch_size,
        device="cpu",
        **extra,
    )
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        certify_dataset(config, out, model=loaded, dataset=dataset, progress=False)
        seconds = (time.perf_counter() - start) / len(indices)
        nomemory = Path(out) / "certify_nomemory.tsv"
        return (
            seconds,
            _read_tsv(Path(out) / "certify.tsv"),
            _read_tsv(nomemory) if nomemory.exists() else None,
        )


def public_pipeline(model, x, n: int, seed: int, batch_size: int, iterations=(900, 100)):
    """ddsmoothing sigma (900 it) -> ancer theta (100 it) -> ddsmoothing certify, at public defaults."""
    torch.manual_seed(seed)
    pub = public.public_model(model)
    start = time.perf_counter()
    sigma = public.dds_sigma(pub, x, SIGMA, iterations[0])
    t_sigma = time.perf_counter()
    theta = public.ancer_theta(pub, x, sigma, iterations[1])
    t_theta = time.perf_counter()
    pred, gap, radius, proxy = public.certify(
        model, x, theta, n0=N0, n=n, alpha=ALPHA, batch_size=batch_size, num_classes=10
    )
    end = time.perf_counter()
    B = x.shape[0]
    parts = {"sigma": (t_sigma - start) / B, "theta": (t_theta - t_sigma) / B, "certify": (end - t_theta) / B}
    return (end - start) / B, parts, sigma, pred, radius, proxy


def digits_pipelines(bench: Bench, s: Settings, rep: Report) -> dict:
    """The whole ANCER pipeline (anisocert, public) vs a fixed-sigma certification, on digits."""
    loaded = load_model("builtin:digits-gaussian")
    dataset = load_data("digits")
    indices = np.linspace(0, len(dataset) - 1, s.pipeline_inputs).astype(int)
    x = dataset.get(indices)
    labels = dataset.labels[indices]
    n, bs = s.pipeline_n, bench.batch_size
    runs = {"fixed": [], "ancer": [], "public": []}
    for seed in range(s.pipeline_reps):
        runs["fixed"].append(run_pipeline("fixed", loaded, dataset, indices, n, seed, bs))
        runs["ancer"].append(
            run_pipeline("ancer", loaded, dataset, indices, n, seed, bs, iso_method="search")
        )
        runs["public"].append(public_pipeline(loaded.module, x, n, seed, bs))
    fixed = [r[0] for r in runs["fixed"]]
    base = med(fixed)

    def q_tsv(tsv):
        return quality(tsv["radius"], tsv["radius_proxy"], tsv["correct"])

    anc_tsv, anc_raw = runs["ancer"][0][1], runs["ancer"][0][2]
    _, parts, dds_sig, pred, radius, proxy = runs["public"][0]
    stats = {
        "fixed": q_tsv(runs["fixed"][0][1]),
        "ancer": q_tsv(anc_tsv),
        "ancer_raw": q_tsv(anc_raw) if anc_raw is not None else None,
        "public": quality(radius, proxy, pred == labels),
    }
    opt_time = float(np.mean(anc_tsv["opt_time"]))
    cert_time = float(np.mean(anc_tsv["time"]))
    fallbacks = int(np.sum(anc_tsv["fallback"]))

    def row(name, times, q, note=""):
        return [
            name,
            fmt_s(times),
            f"{med(times) / base:.2f}x",
            f"{q['acr_proxy']:.3f}",
            f"{q['acr']:.3f}",
            f"{q['ca0.0']:.2f}",
            f"{q['ca0.5']:.2f}",
            f"{q['ca1.0']:.2f}",
            note,
        ]

    ancer_times = [r[0] for r in runs["ancer"]]
    public_times = [r[0] for r in runs["public"]]
    rows = [
        row("fixed sigma = 0.25 (`certify_dataset`, method fixed)", fixed, stats["fixed"]),
        row(
            "anisocert ANCER (`certify_dataset`: search sigma + theta + certify + memory)",
            ancer_times,
            stats["ancer"],
            f"opt {opt_time:.3g} s + certify {cert_time:.3g} s; {fallbacks} iso fallbacks",
        ),
    ]
    if stats["ancer_raw"] is not None:
        rows.append(row("  same, raw certificates (no memory)", ancer_times, stats["ancer_raw"]))
    rows.append(
        row(
            "public: ddsmoothing sigma (900 it) + ancer theta (100 it) + ddsmoothing certify",
            public_times,
            stats["public"],
            f"sigma {parts['sigma']:.3g} s + theta {parts['theta']:.3g} s + certify {parts['certify']:.3g} s",
        )
    )
    rep.add(
        f"### Whole pipelines, digits (`builtin:digits-gaussian`): N = {n:,}, {len(indices)} test inputs "
        f"(indices {', '.join(map(str, indices[:8]))}{'...' if len(indices) > 8 else ''}), "
        f"{s.pipeline_reps} repetition(s)\n\n"
        "Time per input; quality (first repetition) over the same inputs: average certified proxy radius "
        "(ACR proxy), average certified radius (min theta x gap), certified accuracy at proxy radius 0, "
        "0.5, 1.0. Abstentions and wrong predictions count 0. anisocert's numbers are memory-based "
        "(sound for data-dependent theta); the public code has no memory.\n\n"
        + table(
            [
                "pipeline",
                "s per input",
                "ratio to fixed",
                "ACR proxy",
                "ACR",
                "CA(0)",
                "CA(0.5)",
                "CA(1.0)",
                "breakdown",
            ],
            rows,
        )
    )

    # isotropic sigma only: anisocert's search vs ddsmoothing's gradient, same certifier and draws
    smoothed = Smoothed(loaded.module, "gaussian", batch_size=bs, device="cpu")
    ours_sigma = optimise_sigma(loaded.module, "gaussian", x, SIGMA, method="search", idx=indices).sigma
    iso_rows = []
    iso = {}
    for name, sig in (("anisocert search", ours_sigma), ("ddsmoothing gradient (900 it)", dds_sig)):
        sig = sig.detach().float().reshape(-1)
        cert = smoothed.certify(x, sig, n0=N0, n=s.iso_n, alpha=ALPHA, seed=0, idx=indices)
        q = quality(cert.radius, cert.proxy_radius, cert.prediction == labels)
        iso[name] = q
        iso_rows.append(
            [name, f"{float(sig.mean()):.3f} [{float(sig.min()):.3f}-{float(sig.max()):.3f}]"]
            + [f"{q['acr']:.3f}", f"{q['ca0.0']:.2f}", f"{q['ca0.5']:.2f}", f"{q['ca1.0']:.2f}"]
        )
    rep.add(
        f"### Isotropic sigma quality, digits: the two sigmas certified by `Smoothed.certify` (N = "
        f"{s.iso_n:,}, same draws, no memory)\n\n"
        + table(["sigma from", "sigma mean [min-max]", "ACR", "CA(0)", "CA(0.5)", "CA(1.0)"], iso_rows)
    )
    return {
        "fixed": base,
        "ancer": med(ancer_times),
        "public": med(public_times),
        "stats": stats,
        "iso": iso,
        "inputs": len(indices),
        "n": n,
    }


def resnet_pipeline(bench: Bench, s: Settings, rep: Report, parts: dict) -> dict:
    """ANCER pipeline vs fixed on the random ResNet-18 through certify_dataset at a reduced N; the
    certification time is then scaled linearly to N = 100,000 (optimisation does not depend on N)."""
    model = bench.module
    x = bench.x[:1]
    with torch.inference_mode():
        y = model(x).argmax(1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cifar_shaped.npz"
        np.savez(path, x=x.numpy(), y=y, num_classes=np.array(10))
        dataset = load_data(f"npz:{path}")
        loaded = LoadedModel(model, "logits", (3, 32, 32), 10, "ancer_resnet18 (random weights)", None)
        n = s.resnet_pipeline_n
        fixed = run_pipeline("fixed", loaded, dataset, [0], n, 0, bench.batch_size)
        ancer = run_pipeline("ancer", loaded, dataset, [0], n, 0, bench.batch_size, iso_method="search")
    scale = 100_000 / n
    fixed_cert = float(fixed[1]["time"][0])
    opt, cert = float(ancer[1]["opt_time"][0]), float(ancer[1]["time"][0])
    ratio = (opt + cert * scale) / (fixed_cert * scale)
    public_opt = parts["sigma_gradient_public"] + parts["theta_public"]
    public_ratio = (public_opt + parts["public_cert_per_sample"] * 100_000) / (fixed_cert * scale)
    rows = [
        ["fixed sigma", fmt_s([fixed[0]]), f"certify {fixed_cert:.3g} s", f"{fixed_cert * scale:.3g} s", "1"],
        [
            "anisocert ANCER (search + theta + certify)",
            fmt_s([ancer[0]]),
            f"opt {opt:.3g} s + certify {cert:.3g} s",
            f"{opt + cert * scale:.3g} s",
            f"{ratio:.2f}x",
        ],
        [
            "public (estimate from the optimisation table, scaled to defaults)",
            "-",
            f"sigma {parts['sigma_gradient_public']:.3g} s + theta {parts['theta_public']:.3g} s",
            f"{public_opt + parts['public_cert_per_sample'] * 100_000:.3g} s",
            f"{public_ratio:.2f}x",
        ],
    ]
    rep.add(
        f"### Whole pipeline, {bench.name}: 1 input, run at N = {n:,} (1 repetition), scaled to N = 100,000\n\n"
        "Measured with `certify_dataset` (public defaults for the optimisers: search 1000 draws, theta "
        "100 it x 100); the certification part is scaled by 100,000 / N, the optimisation part is "
        "not. Random weights: the radii mean nothing here, only the time.\n\n"
        + table(["pipeline", "measured, s per input", "parts", "at N = 100,000", "ratio to fixed"], rows)
    )
    return {"ratio": ratio, "public_ratio": public_ratio}


# ------------------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import scipy

    return (
        f"- CPU: {cpu}, {torch.get_num_threads()} torch threads ({len(_cpus())} cores visible), no GPU used\n"
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}\n"
        f"- anisocert {_version('anisocert')}; public code: {public.available()}"
    )


def _cpus():
    import os

    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def targets(cert: dict, opt: dict, pipe: dict, res_pipe: dict, mem: dict, s: Settings) -> str:
    """Issue 5's targets, each with the measured figure and whether it is met."""

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    d, r = cert["digits"], cert["resnet"]
    q_ours, q_pub = pipe["stats"]["ancer"], pipe["stats"]["public"]
    iso_ours, iso_pub = pipe["iso"]["anisocert search"], pipe["iso"]["ddsmoothing gradient (900 it)"]
    quality_ok = q_ours["acr_proxy"] >= q_pub["acr_proxy"] and q_ours["ca0.0"] >= q_pub["ca0.0"]
    ratio = pipe["ancer"] / pipe["fixed"]
    lines = [
        "| target | measured | status |",
        "|---|---|---|",
        f"| certify within 1.05x of N / throughput, digits (N = {s.digits_n:,}) | {d['ours'] / d['limit']:.3f}x "
        f"(ddsmoothing {d['public'] / d['limit']:.3f}x) | {mark(d['ours'] / d['limit'] <= 1.05)} |",
        f"| certify within 1.05x of N / throughput, ResNet-18 (N = {s.resnet_n:,}) | "
        f"{r['ours'] / r['limit']:.3f}x (ddsmoothing {r['public'] / r['limit']:.3f}x) | "
        f"{mark(r['ours'] / r['limit'] <= 1.05)} |",
        f"| isotropic sigma cheaper than 900 gradient steps, digits | search {opt['digits']['search']:.3g} s vs "
        f"gradient {opt['digits']['sigma_gradient_public']:.3g} s (public) per input | "
        f"{mark(opt['digits']['search'] < opt['digits']['sigma_gradient_public'])} |",
        f"| isotropic sigma cheaper, ResNet-18 | search {opt['resnet']['search']:.3g} s vs gradient "
        f"{opt['resnet']['sigma_gradient_public']:.3g} s (public) per input | "
        f"{mark(opt['resnet']['search'] < opt['resnet']['sigma_gradient_public'])} |",
        f"| isotropic certified radius >= public, digits (N = {s.iso_n:,}) | ACR {iso_ours['acr']:.3f} vs "
        f"{iso_pub['acr']:.3f} | {mark(iso_ours['acr'] >= iso_pub['acr'])} |",
        "| isotropic certified radius >= public, CIFAR-shaped model | not measured: no trained CIFAR model "
        "here (random weights certify nothing meaningful) | **not shown** |",
        f"| ANCER theta faster than ancer-python (frozen model, batched) | digits {opt['digits']['theta']:.3g} s vs "
        f"{opt['digits']['theta_public']:.3g} s, ResNet-18 {opt['resnet']['theta']:.3g} s vs "
        f"{opt['resnet']['theta_public']:.3g} s per input | "
        f"{mark(opt['digits']['theta'] < opt['digits']['theta_public'])} |",
        f"| ANCER pipeline <= 1.5x fixed at N = 100,000, digits (measured, N = {pipe['n']:,}) | {ratio:.2f}x "
        f"(public {pipe['public'] / pipe['fixed']:.2f}x) | {mark(ratio <= 1.5)} |",
        f"| ANCER pipeline <= 1.5x fixed at N = 100,000, ResNet-18 (scaled from N = {s.resnet_pipeline_n:,}) | "
        f"{res_pipe['ratio']:.2f}x (public, estimated {res_pipe['public_ratio']:.2f}x) | "
        f"{mark(res_pipe['ratio'] <= 1.5)} |",
        f"| ACR proxy and certified accuracy >= public pipeline, digits ({pipe['inputs']} inputs) | ACR proxy "
        f"{q_ours['acr_proxy']:.3f} vs {q_pub['acr_proxy']:.3f}, CA(0) {q_ours['ca0.0']:.2f} vs "
        f"{q_pub['ca0.0']:.2f} | {mark(quality_ok)} |",
        f"| memory: {s.memory_regions:,} x 3,072 certificates in < 60 s | {mem['seconds']:.3g} s | "
        f"{mark(mem['seconds'] < 60 and s.memory_regions >= 10_000)} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="reduced settings: under 10 minutes on 2 cores")
    parser.add_argument("--smoke", action="store_true", help="tiny settings to check the script; no figures")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown report")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = SMOKE if args.smoke else QUICK if args.quick else FULL
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    command = "python benchmarks/run.py" + ("" if mode == "full" else f" --{mode}")
    start = time.perf_counter()
    rep = Report()
    rep.add(f"## Machine\n\n{machine()}\n\nCommand: `{command}` (mode {mode}).")
    rep.add(f"## Settings\n\n```\n{s}\n```")

    digits = load_model("builtin:digits-gaussian").module
    data = load_data("digits")
    torch.manual_seed(0)
    resnet = create_model("ancer_resnet18").eval()  # the DDRS/ANCER release's ResNet-18, random weights
    benches = {
        "digits": Bench(
            "digits CNN", digits, 2000, data.get(np.linspace(0, len(data) - 1, s.digits_inputs).astype(int))
        ),
        "resnet": Bench(
            "ResNet-18 (3x32x32, random weights)", resnet, 400, torch.rand(s.resnet_inputs, 3, 32, 32)
        ),
    }
    rep.add("## Results")
    for bench in benches.values():
        bench.throughput = med(throughput(bench.module, tuple(bench.x.shape[1:]), bench.batch_size, s.reps))
    cert = {
        "digits": certification(benches["digits"], s.digits_n, s.reps, rep),
        "resnet": certification(benches["resnet"], s.resnet_n, s.reps, rep),
    }
    opt = {
        "digits": optimisation(
            benches["digits"],
            s,
            rep,
            sigma_it=s.digits_sigma_it,
            theta_it=DEFAULTS["theta"],
            search_samples=None,
        ),
        "resnet": optimisation(
            benches["resnet"],
            s,
            rep,
            sigma_it=s.resnet_sigma_it,
            theta_it=s.resnet_theta_it,
            search_samples=s.resnet_search_samples,
        ),
    }
    mem = memory(s, rep)
    pipe = digits_pipelines(benches["digits"], s, rep)
    parts = dict(opt["resnet"], public_cert_per_sample=cert["resnet"]["public"] / s.resnet_n)
    res_pipe = resnet_pipeline(benches["resnet"], s, rep, parts)
    rep.add("## Targets of issue 5\n\n" + targets(cert, opt, pipe, res_pipe, mem, s))
    elapsed = time.perf_counter() - start
    rep.add(f"Total benchmark time: {elapsed:.0f} s.")
    header = (
        "# Benchmarks\n\n"
        "Written by `benchmarks/run.py` (issue 5); re-run it to refresh. `make bench` installs the public "
        "implementations from PyPI (`--no-deps`, so torch is untouched) and runs the quick mode.\n\n"
        "The limit of a certification is N / (forward throughput of the model at the batch size used), "
        "measured on the same machine in the same run. Timings are wall-clock medians with [min-max] "
        "over the repetitions; the machine may be shared with other work, which shows as spread.\n"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(header + "\n" + "\n\n".join(rep.parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
