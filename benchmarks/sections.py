"""Sections on the parts: certification against the limit, the early stop, the optimisers and the
memory, each next to the public code where it has a counterpart."""

from __future__ import annotations

import numpy as np
import public_code as public
import torch
from common import (
    ALPHA,
    N0,
    N_TARGET,
    PUBLIC,
    SIGMA,
    Bench,
    Report,
    Settings,
    med,
    spread,
    table,
    throughput,
    timed,
)
from memory_bench import memory_benchmark

from anisocert import Smoothed, optimise_sigma, optimise_theta


def certification(bench: Bench, n: int, reps: int, rep: Report) -> dict:
    """Smoothed.certify (all inputs in one call) and ddsmoothing's Smooth.certify (one by one, as its
    scripts do) against the limit N / throughput. The throughput is probed between timings and each
    timing's limit uses the two probes around it, so that a change of load moves the limit with it."""
    x, B = bench.x, bench.x.shape[0]
    smoothed = Smoothed(bench.module, "gaussian", batch_size=bench.batch_size, device="cpu")
    kw = dict(n0=N0, alpha=ALPHA, idx=list(range(B)))
    public_kw = dict(n0=N0, alpha=ALPHA, batch_size=bench.batch_size, num_classes=10)
    runners = {
        "ours": lambda n, seed: smoothed.certify(x, SIGMA, n=n, seed=seed, **kw),
        "public": lambda n, seed: public.certify(bench.module, x, SIGMA, n=n, **public_kw),
    }
    for run in runners.values():
        run(2 * bench.batch_size, 0)  # warm-up: every batch shape once
    ratio = {"ours": [], "public": [], "ours_draw": []}
    seconds, limits = {"ours": [], "public": []}, []
    probe = [throughput(bench.module, tuple(x.shape[1:]), bench.batch_size)]
    for seed in range(reps):
        for name, run in runners.items():
            torch.manual_seed(seed)
            t = timed(run, n, seed)[0] / B
            probe.append(throughput(bench.module, tuple(x.shape[1:]), bench.batch_size))
            rate = (probe[-2] + probe[-1]) / 2  # the load around this timing
            seconds[name].append(t)
            ratio[name].append(t / (n / rate))
            if name == "ours":
                limits.append(n / rate)
                ratio["ours_draw"].append(t / ((n + N0) / rate))  # per-draw overhead (n0 included)
    projected = med(ratio["ours_draw"]) * (N_TARGET + N0) / N_TARGET
    rows = [
        ["anisocert `Smoothed.certify`", spread(seconds["ours"]), spread(ratio["ours"], "x")],
        ["ddsmoothing `Smooth.certify`", spread(seconds["public"]), spread(ratio["public"], "x")],
    ]
    rep.add(
        f"### Certification, {bench.name}: N = {n:,}, n0 = {N0}, {B} input(s), batch {bench.batch_size}, "
        f"{reps} repetition(s)\n\n"
        f"Limit N / throughput: {spread(limits)} per input (throughput probed between timings). "
        "anisocert's time over (n0 + N) / throughput, its per-draw overhead: "
        f"{spread(ratio['ours_draw'], 'x')}; so at N = {N_TARGET:,} (n0 = {N0 / N_TARGET:.1%} of the draws) "
        f"its ratio to the limit would be {projected:.3f}x.\n\n"
        + table(["code", "s per input", "ratio to N / throughput"], rows)
    )
    return {
        "ours": med(ratio["ours"]),
        "public": med(ratio["public"]),
        "projected": projected,
        "n": n,
        "seconds": med(seconds["ours"]),
        "public_over_ours": med(p / o for p, o in zip(seconds["public"], seconds["ours"])),
    }


def early_stop(bench: Bench, n: int, rep: Report) -> dict:
    """theta = 4 drowns the digits, so every input abstains: the early stop must give the same outputs
    as drawing all n, with fewer draws."""
    x, B = bench.x, bench.x.shape[0]
    smoothed = Smoothed(bench.module, "gaussian", batch_size=bench.batch_size, device="cpu")
    kw = dict(n0=N0, n=n, alpha=ALPHA, idx=list(range(B)))
    t_stop, stop = timed(smoothed.certify, x, 4.0, early_stop=True, **kw)
    t_full, full = timed(smoothed.certify, x, 4.0, early_stop=False, **kw)
    same = all(np.array_equal(getattr(stop, k), getattr(full, k)) for k in ("prediction", "gap", "radius"))
    rows = [
        [name, f"{t / B:.3g} s", f"{int(r.drawn.sum()) / B:,.0f}", f"{int((r.prediction < 0).sum())}/{B}"]
        for name, t, r in (("early_stop=True", t_stop, stop), ("early_stop=False", t_full, full))
    ]
    rep.add(
        f"### Sound early stop, {bench.name}: theta = 4 (every input abstains), N = {n:,}, {B} inputs\n\n"
        f"Prediction, gap and radius identical to the full run: **{'yes' if same else 'NO'}**; time "
        f"ratio {t_stop / t_full:.2f}.\n\n"
        + table(["certify", "s per input", "draws per input", "abstained"], rows)
    )
    return {"same": same, "ratio": t_stop / t_full}


def optimisation(bench: Bench, rep: Report, *, sigma_it: int, theta_it: int, search_draws: int) -> dict:
    """Per-input cost of each optimiser, anisocert next to the public code on the same batch of inputs,
    scaled linearly to the public defaults ('at defaults')."""
    x, B = bench.x, bench.x.shape[0]
    kw = dict(idx=list(range(B)), batch_size=bench.batch_size)
    pub = public.public_model(bench.module)
    sigma = torch.full((B,), SIGMA)
    t = {
        "sigma_ours": timed(optimise_sigma, bench.module, "gaussian", x, SIGMA, iterations=sigma_it, **kw)[0],
        "sigma_public": timed(public.dds_sigma, pub, x, SIGMA, sigma_it)[0],
        "search": timed(
            optimise_sigma, bench.module, "gaussian", x, SIGMA, method="search", samples=search_draws, **kw
        )[0],
        "theta_ours": timed(optimise_theta, bench.module, "gaussian", x, sigma, iterations=theta_it, **kw)[0],
        "theta_public": timed(public.ancer_theta, pub, x, sigma, theta_it)[0],
    }
    scale = {
        "sigma_ours": PUBLIC["sigma_it"] / sigma_it,
        "sigma_public": PUBLIC["sigma_it"] / sigma_it,
        "search": PUBLIC["search_draws"] / search_draws,
        "theta_ours": PUBLIC["theta_it"] / theta_it,
        "theta_public": PUBLIC["theta_it"] / theta_it,
    }
    at_defaults = {k: t[k] / B * scale[k] for k in t}
    rows = [
        ["isotropic sigma, gradient (DDRS)", f"{sigma_it} it x 100 draws", "sigma_ours", "sigma_public"],
        ["isotropic sigma, search (anisocert)", f"17 x {search_draws} draws, no backward", "search", None],
        ["ANCER theta (Adam)", f"{theta_it} it x 100 draws", "theta_ours", "theta_public"],
    ]
    cells = []
    for work, run, ours, theirs in rows:
        line = [work, run, f"{t[ours] / B:.3g} s", f"{at_defaults[ours]:.3g} s"]
        if theirs is None:
            line += ["-", "-", "-"]
        else:
            ratio = at_defaults[theirs] / at_defaults[ours]
            line += [f"{t[theirs] / B:.3g} s", f"{at_defaults[theirs]:.3g} s", f"{ratio:.2f}x"]
        cells.append(line)
    rep.add(
        f"### Optimisers, {bench.name}: {B} input(s) batched, 1 repetition\n\n"
        "'at defaults' scales to 900 gradient iterations, 100 Adam iterations and 1000 search draws.\n\n"
        + table(
            ["work", "run", "anisocert", "at defaults", "public", "public at defaults", "public / anisocert"],
            cells,
        )
    )
    return at_defaults


def theta_convergence(bench: Bench, rep: Report) -> dict:
    """optimise_theta's convergence stop (tol): the steps it saves out of the public 100."""
    x, B = bench.x, bench.x.shape[0]
    kw = dict(idx=list(range(B)), batch_size=bench.batch_size, iterations=PUBLIC["theta_it"])
    sigma = torch.full((B,), SIGMA)
    rows, out = [], {}
    for tol in (None, 1e-3):
        seconds, res = timed(optimise_theta, bench.module, "gaussian", x, sigma, tol=tol, **kw)
        steps = res.iterations_run.float()
        out[tol] = seconds / B
        rows.append(
            [
                str(tol),
                f"{seconds / B:.3g} s",
                f"{float(steps.mean()):.0f} [{int(steps.min())}-{int(steps.max())}]",
            ]
        )
    rep.add(
        f"### ANCER theta with the convergence stop, {bench.name}: {B} inputs, 100 iterations at most, "
        "patience 10\n\n" + table(["tol", "s per input", "Adam steps per input"], rows)
    )
    return out


def memory(s: Settings, rep: Report) -> dict:
    """memory_bench: one CertificateMemory.certify (decide + store) per CIFAR-shaped region."""
    runs = [memory_benchmark(s.memory_regions, 3072, "l2", seed=seed) for seed in range(s.memory_seeds)]
    checkpoints = sorted(runs[0]["per_region_ms"])
    row = [
        f"{s.memory_regions:,} x 3,072 (l2)",
        spread([r["seconds"] for r in runs]),
        *[f"{med([r['per_region_ms'][c] for r in runs]):.3f}" for c in checkpoints],
        ", ".join(f"{k} {v}" for k, v in sorted(runs[0]["statuses"].items())),
    ]
    header = ["regions", "total", *[f"ms per certificate at {c:,} stored" for c in checkpoints], "statuses"]
    rep.add(
        f"### Memory-based certification at scale ({s.memory_seeds} seed(s))\n\n"
        "Centres uniform in [0, 1]^3072, 1% of them near an earlier centre (where other classes conflict), "
        "theta uniform in [0.12, 0.5], gap in [0.1, 3.8]; only the certify calls are timed. 'ms per "
        "certificate at M' is the mean cost of the 100 certificates added just before the memory holds M: "
        "the cost of one more certificate as the memory grows.\n\n" + table(header, [row])
    )
    return {"seconds": med([r["seconds"] for r in runs]), "per_region_ms": runs[0]["per_region_ms"]}


def resnet_pipeline(bench: Bench, cert_s: float, opt: dict, public_cert_ratio: float, rep: Report) -> dict:
    """The ResNet-18 pipeline at N = 100,000 composed from the parts measured above (a certification at
    N = 100,000 takes about 7 minutes per input here): certify time scaled by (n0 + 100,000) / (n0 + N)."""
    fixed = cert_s
    ours = opt["search"] + opt["theta_ours"] + fixed
    theirs = opt["sigma_public"] + opt["theta_public"] + fixed * public_cert_ratio
    rows = [
        ["fixed sigma (`Smoothed.certify`)", "-", f"{fixed:.3g} s", "1"],
        [
            "anisocert ANCER: search (1000 draws) + theta (100 it) + certify",
            f"{opt['search']:.3g} + {opt['theta_ours']:.3g} s",
            f"{ours:.3g} s",
            f"{ours / fixed:.2f}x",
        ],
        [
            "public: gradient sigma (900 it) + theta (100 it) + Cohen certify",
            f"{opt['sigma_public']:.3g} + {opt['theta_public']:.3g} s",
            f"{theirs:.3g} s",
            f"{theirs / fixed:.2f}x",
        ],
    ]
    rep.add(
        f"### Whole pipeline, {bench.name}, composed at N = {N_TARGET:,}\n\n"
        "From the certification and optimiser tables above (random weights: only the time means "
        "something). The public certify is anisocert's time times the measured ddsmoothing / anisocert "
        "ratio.\n\n"
        + table(["pipeline", "optimisation per input", "total per input", "ratio to fixed"], rows)
    )
    return {"ratio": ours / fixed, "public_ratio": theirs / fixed}
