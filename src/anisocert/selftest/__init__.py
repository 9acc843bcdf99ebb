"""Measured guarantees: anisocert checked against base classifiers whose smoothed probabilities are known.

`run_selftest` (and `anisocert selftest`) measures three groups of checks:

- ``coverage``: the false-certification rate of `Smoothed.certify`. One input is certified T times in one
  batched call, each copy with its own index, hence its own independent noise stream. A false
  certification is a non-abstaining certificate whose region is not inside the smoothed classifier's
  true decision region: a wrong class, or a gap larger than the true gap (the scaled distance from x to
  the exact decision boundary). The rate must stay below the (1 - FALSE_ALARM) quantile of
  Binomial(T, alpha) / T, so a correct certifier fails a coverage check with probability below 1e-6.
  One more check compares the sampler with the closed forms: the label's count over all T n draws of
  each case, as a z-score (|z| <= 5).
- ``tightness``: mean certified gap / true gap at n = 10^4 (and 10^5 in the full run) on easy inputs,
  with a floor (0.9 at 10^4, 0.95 at 10^5; Clopper-Pearson alone predicts about 0.96 and 0.99).
- ``sequential``: the false-certification rate of sequential certification (``certify(radii=...)``)
  with inputs 1 % below and above a grid radius, where it looks most often (see selftest/sequential.py).
- ``geometry``: the exact tests memory relies on (`regions.intersects`, `regions.inside`,
  `regions.largest_disjoint_scale`, `CertificateMemory`) against independent solvers, on random small
  cases and cases placed 1e-4 from touching (see selftest/geometry.py). Every disagreement counts; the
  bound is 0.
- ``float``: the false-certification rate of the exact sampler (noise rounded to the grid, drawn from
  integers), on classifiers whose exact probability under the rounded law is known (selftest/exact.py).

Base classifiers: f(z) = 1 iff w.z + b > 0 (two classes). Gaussian noise: P(f(x + e) = 1) =
Phi((w.x + b) / ||theta * w||_2) and the true gap is |w.x + b| / ||theta * w||_2. Uniform noise with w
along axis k, f(z) = 1 iff z_k > c: P = clip((x_k - c + theta_k) / (2 theta_k), 0, 1) and the true gap is
|x_k - c| / theta_k. Both are computed in float64 from the float32 values the model and sampler use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.stats import binom, norm

from .._checks import check_int
from ..core import regions
from ..core.bounds import pA_lower
from ..core.noise import get_noise
from ..core.smooth import ABSTAIN, Smoothed
from ..errors import UnknownNameError
from . import geometry
from ._linear import Linear2

__all__ = ["CheckResult", "GROUPS", "FALSE_ALARM", "run_selftest", "format_table"]

GROUPS = ("coverage", "tightness", "geometry", "sequential", "float")
FALSE_ALARM = 1e-6  # a correct certifier fails one coverage check with probability below this


@dataclass(frozen=True)
class CheckResult:
    """One measured check: passed iff ``measured <= bound`` (op "<=") or ``measured >= bound`` (op ">=")."""

    name: str
    measured: float
    bound: float
    passed: bool
    detail: str
    op: str = "<="
    seconds: float = 0.0


@dataclass(frozen=True)
class _Plan:
    quick: bool
    trials: int  # T independent certifications per coverage case
    n0: int
    n: int
    tight_trials: int
    tight_ns: tuple[int, ...]
    pairs: int  # random geometry cases per norm
    max_dim: int
    memory_regions: int


_QUICK = _Plan(True, 4000, 50, 500, 100, (10_000,), 150, 8, 60)
_FULL = _Plan(False, 20_000, 100, 1000, 300, (10_000, 100_000), 600, 20, 200)
_TIGHT_FLOOR = {10_000: 0.9, 100_000: 0.95}
# coverage cases: (noise, anisotropic theta, smoothed probability of the true class, true class, alpha)
_COVERAGE = (
    ("gaussian", False, 0.75, 1, 0.05),
    ("gaussian", True, 0.7, 0, 0.1),
    ("uniform", False, 0.75, 1, 0.05),
    ("uniform", True, 0.7, 0, 0.1),
    ("gaussian", True, 0.8, 1, 0.001),
)
_COVERAGE_FULL_ONLY = (("uniform", True, 0.8, 1, 0.001),)


def run_selftest(quick: bool = True, seed: int = 0, *, groups=GROUPS) -> list[CheckResult]:
    """Run the checks and return one CheckResult per check (none printed).

    Parameters
    ----------
    quick : bool, default True
        The CI-sized run (T = 4,000 trials per coverage case; about 15 s on one core); False for the full
        run (T = 20,000, tightness also at n = 10^5, more geometry cases; about 150 s).
    seed : int, default 0
        Seeds every noise stream and random case; the same seed gives the same figures.
    groups : sequence of str, default all of GROUPS
        Which groups to run: "coverage", "tightness", "geometry", "sequential", "float" (the exact sampler).
    """
    seed = check_int("seed", seed, min_value=0)
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise UnknownNameError(f"selftest groups {unknown} are unknown; choose from {list(GROUPS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of 8 values: more threads only add waiting (8x slower on 2 busy cores)
    try:
        return _run(_QUICK if quick else _FULL, seed, groups)
    finally:
        torch.set_num_threads(threads)


def _run(plan: _Plan, seed: int, groups) -> list[CheckResult]:
    results: list[CheckResult] = []
    if "coverage" in groups:
        cases = _COVERAGE + (() if plan.quick else _COVERAGE_FULL_ONLY)
        zs = []
        for number, case in enumerate(cases):
            start = time.perf_counter()
            result, z = _coverage(case, plan, seed, number)
            results.append(replace(result, seconds=time.perf_counter() - start))
            zs.append(z)
        results.append(_calibration(zs, plan))
    if "tightness" in groups:
        for n in plan.tight_ns:
            results += [_timed(_tightness, noise, n, plan, seed) for noise in ("gaussian", "uniform")]
    if "sequential" in groups:
        results += _sequential(plan, seed)
    if "geometry" in groups:
        results += _geometry(plan, seed)
    if "float" in groups:
        results += _exact_sampler(plan, seed)
    return results


def _exact_sampler(plan: _Plan, seed: int) -> list[CheckResult]:
    """Group ``float``: false certifications of the exact sampler (selftest/exact.py), 10,000 trials a case
    (quick) or 20,000 (full), and its sampled probability against the exact one (|z| <= 5)."""
    from .exact import FLOAT_CASES, exact_false_rate

    trials, out, zs = (10_000 if plan.quick else 20_000), [], []
    for number, (noise, aniso) in enumerate(FLOAT_CASES):
        start = time.perf_counter()
        rate, bound, z, detail = exact_false_rate(noise, aniso, trials, 200, 0.05, seed * 1000 + number)
        shape = "per-coordinate theta" if aniso else "isotropic"
        name = f"exact sampler false certification rate, {noise} {shape}, alpha=0.05"
        out.append(CheckResult(name, rate, bound, rate <= bound, detail, seconds=time.perf_counter() - start))
        zs.append(z)
    worst = float(np.max(np.abs(zs)))
    detail = f"z per case: {', '.join(f'{z:+.2f}' for z in zs)}; |z| > 5 has probability 5.7e-7 per case"
    out.append(CheckResult("exact sampler probability vs exact, max |z|", worst, 5.0, worst <= 5.0, detail))
    return out


def _geometry(plan: _Plan, seed: int) -> list[CheckResult]:
    """The geometry rows (selftest/geometry.py), in one random stream: every disagreement counts."""
    checks = (
        geometry.intersects_errors,
        geometry.inside_errors,
        geometry.scale_down_errors,
        geometry.memory_errors,
    )
    rng = np.random.default_rng([seed, 7])
    out = []
    for norm_name in regions.NORMS:
        for check in checks:
            start = time.perf_counter()
            name, errors, detail = check(norm_name, plan, rng)
            seconds = time.perf_counter() - start
            out.append(CheckResult(name, errors, 0, errors == 0, detail, seconds=seconds))
    return out


def format_table(results: list[CheckResult]) -> str:
    """The results as a plain-text table (check, measured, bound, PASS/FAIL), details below each row."""
    width = max(len(r.name) for r in results) if results else 5
    lines = [f"{'check':<{width}}  {'measured':>10}  {'bound':>12}  result"]
    for r in results:
        lines.append(
            f"{r.name:<{width}}  {r.measured:>10.4g}  {r.op + ' ' + format(r.bound, '.4g'):>12}  "
            f"{'PASS' if r.passed else 'FAIL'}"
        )
        lines.append(f"    {r.detail}")
    return "\n".join(lines)


def _timed(check, *args) -> CheckResult:
    start = time.perf_counter()
    result = check(*args)
    return replace(result, seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------- linear base classifiers


@dataclass(frozen=True)
class _Problem:
    model: Linear2
    x: torch.Tensor  # (dim,) float32
    theta: torch.Tensor  # (dim,) float32
    label: int  # the smoothed classifier's class at x
    p: float  # its exact smoothed probability at x
    gap_true: float  # scaled distance from x to the smoothed decision boundary, in theta units


def _problem(noise: str, anisotropic: bool, p: float, label: int, rng, dim: int = 8) -> _Problem:
    """A linear base classifier and an input x at which the smoothed probability of `label` is about p."""
    theta = (rng.uniform(0.1, 1.0, dim) if anisotropic else np.full(dim, 0.5)).astype(np.float32)
    x = rng.normal(0.0, 0.5, dim).astype(np.float32)
    if noise == "gaussian":
        w = rng.normal(size=dim).astype(np.float32)
        margin = norm.ppf(p) * np.linalg.norm(theta.astype(np.float64) * w)
    else:
        k = int(rng.integers(dim))
        w = np.zeros(dim, dtype=np.float32)
        w[k] = 1.0
        margin = (2.0 * p - 1.0) * float(theta[k])
    sign = 1.0 if label == 1 else -1.0
    b = np.float32(sign * margin - float(w.astype(np.float64) @ x.astype(np.float64)))
    # exact quantities of the float32 numbers the model and the sampler see
    x64, t64, w64 = (a.astype(np.float64) for a in (x, theta, w))
    m = float(w64 @ x64) + float(b)
    if noise == "gaussian":
        scale = float(np.linalg.norm(t64 * w64))
        p_label, gap_true = float(norm.cdf(abs(m) / scale)), abs(m) / scale
    else:
        t = float(t64[k])
        p_label, gap_true = min(1.0, (abs(m) + t) / (2.0 * t)), abs(m) / t
    return _Problem(
        Linear2(w, b), torch.from_numpy(x), torch.from_numpy(theta), int(m > 0), p_label, gap_true
    )


def _trials(problem: _Problem, noise: str, T: int, n0: int, n: int, alpha: float, seed: int):
    """Certify x T times in one batched call; copy i has index i, hence its own noise stream."""
    smoothed = Smoothed(problem.model, noise, batch_size=20_000, device="cpu")
    x = problem.x.expand(T, -1)
    theta = problem.theta.expand(T, -1)
    return smoothed.certify(x, theta, n0=n0, n=n, alpha=alpha, seed=seed, idx=np.arange(T))


def _coverage(case, plan: _Plan, seed: int, number: int) -> tuple[CheckResult, float]:
    """The false-certification check of one case, and the z-score of the label's count over all T n draws."""
    noise, anisotropic, p, label, alpha = case
    problem = _problem(noise, anisotropic, p, label, np.random.default_rng([seed, 1, number]))
    T, n = plan.trials, plan.n
    res = _trials(problem, noise, T, plan.n0, n, alpha, seed * 1000 + number)
    certified = res.prediction != ABSTAIN
    false = certified & ((res.prediction != problem.label) | (res.gap > problem.gap_true))
    rate = float(false.mean())
    bound = float(binom.ppf(1.0 - FALSE_ALARM, T, alpha) / T)
    naive = float(np.mean(res.counts[:, problem.label] / n > problem.p))
    # a correct certifier errs when nA reaches the smallest count whose bound exceeds p (n0 selection aside)
    k = np.arange(n + 1)
    expected = float(binom.sf(k[pA_lower(k, n, alpha) > problem.p].min() - 1, n, problem.p))
    hits, draws = float(res.counts[:, problem.label].sum()), float(T) * n
    z = (hits - draws * problem.p) / np.sqrt(draws * problem.p * (1.0 - problem.p))
    shape = "anisotropic" if anisotropic else "isotropic"
    detail = (
        f"{T} trials, n={n}, p={problem.p:.3f}, true gap {problem.gap_true:.3f}: {certified.mean():.0%} "
        f"certified; exact Clopper-Pearson rate {expected:.4g}; nA/n as the bound would give {naive:.0%}. "
        f"Bound: (1 - {FALSE_ALARM:g}) quantile of Binomial({T}, {alpha:g}) / {T}"
    )
    name = f"false certification rate, {noise} {shape}, alpha={alpha:g}"
    return CheckResult(name, rate, bound, rate <= bound, detail), float(z)


def _calibration(zs: list[float], plan: _Plan) -> CheckResult:
    """The sampler against the closed forms: the label's count over T n draws per case, as z-scores."""
    worst = float(np.max(np.abs(zs)))
    detail = (
        f"z = (count - T n p) / sqrt(T n p (1 - p)) over {plan.trials * plan.n:,} draws per case: "
        f"{', '.join(f'{z:+.2f}' for z in zs)}; |z| > 5 has probability 5.7e-7 per case"
    )
    return CheckResult("sampled probability vs closed form, max |z|", worst, 5.0, worst <= 5.0, detail)


def _tightness(noise: str, n: int, plan: _Plan, seed: int) -> CheckResult:
    alpha = 0.001
    p = float(norm.cdf(1.5)) if noise == "gaussian" else 0.8
    problem = _problem(noise, True, p, 1, np.random.default_rng([seed, 2, n]))
    res = _trials(problem, noise, plan.tight_trials, plan.n0, n, alpha, seed * 1000 + 500)
    ratio = np.where(res.prediction == problem.label, res.gap / problem.gap_true, 0.0)
    family = get_noise(noise)
    expected = float(family.gap(pA_lower(round(problem.p * n), n, alpha)) / problem.gap_true)
    floor = _TIGHT_FLOOR[n]
    detail = (
        f"{plan.tight_trials} inputs, anisotropic theta, alpha={alpha:g}, true gap {problem.gap_true:.3f}: "
        f"ratio min {ratio.min():.4f}, max {ratio.max():.4f}; Clopper-Pearson at nA = p n gives {expected:.4f}"
    )
    mean = float(ratio.mean())
    return CheckResult(f"tightness gap / true gap, {noise}, n={n}", mean, floor, mean >= floor, detail, ">=")


def _sequential(plan: _Plan, seed: int) -> list[CheckResult]:
    """Sequential certification: simulated draws through its own path at every case, and the torch path."""
    from . import sequential as sq

    T, n, alpha = (10_000, 10_000, 0.05) if plan.quick else (20_000, 10_000, 0.05)
    out = []
    for number, (noise, aniso, radius, side) in enumerate(sq.SEQUENTIAL_CASES):
        start = time.perf_counter()
        problem = sq.seq_problem(noise, aniso, radius * side, np.random.default_rng([seed, 9, number]))
        simulated = sq.simulated_false_rate(noise, problem, T, n, alpha, seed * 1000 + number)
        rows = [("simulated draws", T, simulated)]
        if aniso and side > 1:  # every draw a forward pass: one torch case per noise
            m = 1000 if plan.quick else 4000
            rows.append(("certify", m, sq.certify_false_rate(noise, problem, m, 2000, alpha, seed + number)))
        for how, trials, (rate, bound, draws) in rows:
            shape = "anisotropic" if aniso else "isotropic"
            detail = (
                f"{trials} trials, n={n if how != 'certify' else 2000}, exact radius {problem.exact_radius:.4f} "
                f"({'below' if side < 1 else 'above'} grid radius {radius}), pA={problem.pA:.4f}, mean draws "
                f"{draws:.0f}. Bound: (1 - {FALSE_ALARM:g}) quantile of Binomial({trials}, {alpha:g}) / {trials}"
            )
            name = f"sequential false certification rate ({how}), {noise} {shape}, {side:g} x {radius}"
            result = CheckResult(name, rate, bound, rate <= bound, detail)
            out.append(replace(result, seconds=time.perf_counter() - start))
    return out
