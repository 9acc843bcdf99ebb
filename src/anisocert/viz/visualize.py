"""Pictures of certification runs: each input's theta map and, for an anisotropic certificate, a perturbation
inside it but outside the isotropic one (computed in viz/perturbation.py); the figures of `make demo` (toy
regions, theta maps, perturbations, runtimes). The 2-D toy pictures live in ``viz/toy.py``.

Everything is read from the run store (the reported certificate: after memory when the run used it) and
drawn on matplotlib's Agg canvas (imported lazily, no pyplot), so it works headless. Figures are sized for
one paper column (3.5 in) and saved as PNG (300 dpi) and PDF.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .. import _checks
from ..errors import InputError, InvalidParameterError
from .figures import IMAGE_FIGSIZE, PERTURBATION_FIGSIZE, plot_perturbation, plot_theta_map
from .perturbation import (
    InputCertificate,
    Perturbation,
    isotropic_radii,
    largest_theta_perturbation,
    load_run_model,
    perturb_certificate,
    perturb_input,
    read_certificates,
    validate_check,
    validate_shape,
)
from .toy import ToySettings, one_thread, visualize_toy

__all__ = ["IMAGE_FIGSIZE", "PERTURBATION_FIGSIZE", "InputCertificate", "Perturbation", "ToySettings"]
__all__ += ["ancer_pictures", "demo_figures", "largest_theta_perturbation", "load_run_model", "perturb_input"]
__all__ += ["plot_perturbation"]
__all__ += ["plot_theta_map", "read_certificates", "visualize_run", "visualize_toy"]


def visualize_run(
    run_dir, indices, out, *, iso_run=None, n=None, seed=None, margin=2.0, model=None, device=None, log=None
) -> list[Path]:
    """For each idx: OUT/theta_IDX.{png,pdf} and, for an anisotropic certificate, OUT/perturbation_IDX.

    See plot_theta_map and perturb_input (iso_run, n, seed, margin, model, device; ||d / theta||_p =
    0.99 gap). Inputs without an anisotropic theta (fixed or isotropic runs, fallbacks, abstentions)
    get the theta map only, and `log` says why. The model is resolved (load_run_model) before anything
    is drawn, and only when some input needs the check. Returns the paths written.
    """
    from .plots import check_out_dir

    log, fraction = log or (lambda text: None), 0.99
    validate_shape(fraction, margin)
    indices = list(dict.fromkeys(_checks.check_int("idx", i, min_value=0) for i in indices))
    if not indices:
        raise InvalidParameterError("no inputs given; pass --idx I (several times for several inputs)")
    validate_check(n, seed, device)
    out = check_out_dir(out)
    config, dataset, certs = read_certificates(run_dir, indices)
    iso_radii = isotropic_radii(iso_run, config)
    if any(certs[i].no_perturbation_reason() is None for i in indices):
        model = load_run_model(run_dir, config, model=model, device=device)
    out, written = Path(out), []
    for i in indices:
        cert = certs[i]
        x = dataset.get([i])[0].numpy()
        written += plot_theta_map(cert, x, out / f"theta_{i}", value_range=dataset.value_range)
        reason = cert.no_perturbation_reason()
        if reason:
            log(f"{reason}: no perturbation drawn")
            continue
        iso_radius = max(cert.radius, iso_radii.get(i, 0.0))
        try:
            pert = perturb_certificate(
                config, dataset, cert, model, iso_radius, n=n, seed=seed, fraction=fraction, margin=margin
            )
        except InputError as err:
            log(f"{err}: no perturbation drawn")
            continue
        written += plot_perturbation(pert, out / f"perturbation_{i}", value_range=dataset.value_range)
        p = cert.norm[1]
        log(
            f"input {i}: ||d/theta||_{p} = {pert.scaled_norm:.4g} (gap {cert.gap:.4g}), ||d||_{p} = "
            f"{pert.d_norm:.4g} > isotropic radius {pert.iso_radius:.4g}; smoothed prediction at x + d "
            f"{'holds' if pert.holds else 'does NOT hold'} (class {pert.check_prediction}, pA_lower "
            f"{pert.check_pA_lower:.4f}, {pert.check_n} fresh draws, seed {pert.check_seed})"
        )
    return written


# --------------------------------------------------------------------------------------------------- demo


def _ancer_inputs(certs: dict, count: int) -> list[int]:
    """The first `count` idx with a certified, correct, anisotropic certificate (else any anisotropic)."""
    good = [i for i, c in sorted(certs.items()) if c.no_perturbation_reason() is None]
    right = [i for i in good if certs[i].prediction == certs[i].label]
    return (right + [i for i in good if i not in right])[:count]


def ancer_pictures(run_dir, out, *, iso_run=None, inputs: int = 2, log=None) -> list[Path]:
    """visualize_run on the first `inputs` certified inputs of an ancer run that kept an anisotropic
    certificate (correct ones first): theta maps and perturbed images, for an experiment's pictures."""
    log = log or (lambda text: None)
    _, _, certs = read_certificates(run_dir)
    chosen = _ancer_inputs(certs, inputs)
    if not chosen:
        log(f"{run_dir}: no certified anisotropic input to draw")
        return []
    return visualize_run(run_dir, chosen, out, iso_run=iso_run, log=log)


def demo_figures(out_dir, run_dirs: Sequence, *, inputs: int = 2, log=print) -> list[Path]:
    """The pictures of `make demo`: toy regions, theta maps and perturbations of ANCER runs, runtimes.

    Writes OUT_DIR/toy/toy_{moons,band}.{png,pdf}; for each ANCER run among run_dirs (image data), the
    theta map and perturbation of `inputs` certified inputs into OUT_DIR/RUN_NAME/ (the isotropic radius
    is compared with a matching isotropic run of run_dirs when there is one); OUT_DIR/runtime_NOISE.{png,pdf}
    (the runs of each noise family) and their tables in OUT_DIR/runtime.md. Returns the paths written.
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    with one_thread():
        written = _demo_figures(out, run_dirs, inputs, log)
    log(f"figures: {len(written)} files in {time.perf_counter() - t0:.0f} s")
    return written


def _same(a, b, fields) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in fields)


def _demo_figures(out: Path, run_dirs, inputs: int, log) -> list[Path]:
    """The work of demo_figures."""
    from ..run.store import RunStore
    from .plots import plot_runtime, runtime_summary, runtime_table
    from .report import load_results

    written = visualize_toy(out / "toy", ToySettings(grid=80), log=log)
    configs = {}
    for run in map(Path, run_dirs):
        store = RunStore.read(run)
        configs[run] = store.config
        store.close()
    for run, config in configs.items():
        if config.method != "ancer" or config.data in ("moons", "band"):
            continue
        same = ("data", "split", "noise", "model", "sigma")
        twins = [r for r, c in configs.items() if c.method == "isotropic" and _same(c, config, same)]
        iso = twins[0] if twins else None
        _, _, certs = read_certificates(run)
        chosen = _ancer_inputs(certs, inputs)
        if not chosen:
            log(f"{run}: no certified anisotropic input to draw")
            continue
        written += visualize_run(run, chosen, out / run.name, iso_run=iso, log=log)
    sections = ["# Runtime comparison", ""]
    for noise in dict.fromkeys(c.noise for c in configs.values()):  # one chart per noise: one norm
        results = [load_results(r) for r, c in configs.items() if c.noise == noise]
        written += plot_runtime(results, out / f"runtime_{noise}")
        caption = runtime_summary(results).caption
        sections += [
            f"## {noise} noise",
            "",
            caption,
            "",
            runtime_table(results),
            f"![runtime](runtime_{noise}.png)",
            "",
        ]
    if configs:
        (out / "runtime.md").write_text("\n".join(sections))
        written.append(out / "runtime.md")
    return written
