"""A perturbation inside a run's anisotropic certificate but outside the isotropic one, and the check there.

The certificates are read from the run store (the reported ones: after memory when the run used it) as
InputCertificate. largest_theta_perturbation moves x along the largest theta_i, to just inside the
certified region; perturb_input then runs CERTIFY at x + d with the same theta on fresh draws, with the
run's model loaded only when it is data (load_run_model). The pictures of both are in viz/visualize.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _checks
from ..core import certificates
from ..errors import InputError, InvalidParameterError, ModelLoadError

__all__ = ["InputCertificate", "Perturbation", "isotropic_radii", "largest_theta_perturbation"]
__all__ += ["load_run_model", "perturb_certificate", "perturb_input", "read_certificates"]
__all__ += ["validate_check", "validate_shape"]

_P = {"l2": 2, "l1": 1}


@dataclass(frozen=True, eq=False)
class InputCertificate:
    """The certificate a run reports for one input: region {d : ||d / theta||_p <= gap} around x.

    theta (float64, the input's shape) is the certified noise scale: per dimension for an ANCER record,
    the constant sigma otherwise; anisotropic says which. prediction -1 = abstain. status is the memory
    status ("none" without memory). radius = min(theta) * gap.
    """

    idx: int
    label: int
    prediction: int
    gap: float
    theta: np.ndarray
    sigma: float
    anisotropic: bool
    fallback: bool
    status: str
    method: str
    noise: str
    norm: str

    @property
    def radius(self) -> float:
        return float(certificates.radius(self.theta.min(), self.gap))

    def no_perturbation_reason(self) -> str | None:
        """Why no perturbation can be drawn for this input, or None."""
        if not self.anisotropic:
            why = "an isotropic fallback" if self.fallback else f"a {self.method} run"
            return f"input {self.idx} has no anisotropic theta ({why}: theta = {self.sigma:.4g} everywhere)"
        if self.prediction < 0 or self.gap <= 0:
            return f"input {self.idx} is not certified (abstain, memory status {self.status})"
        return None


def read_certificates(run_dir, indices=None):
    """(config, dataset, {idx: InputCertificate}) for the stored inputs of RUN_DIR (all, or `indices`).

    Raises RunStoreError for a folder that is not a run and InvalidParameterError for an idx the run
    does not hold (the message lists a few that it does).
    """
    from ..core.noise import get_noise
    from ..data import load_data
    from ..run.store import RunStore

    store = RunStore.read(run_dir)
    try:
        config, records = store.config, {c.idx: c for c in store.certificates().rows()}
        memory = {c.idx: c for c in store.memory_certificates().rows()}
    finally:
        store.close()
    wanted = sorted(records) if indices is None else [int(i) for i in indices]
    missing = [i for i in wanted if i not in records]
    if missing:
        have = ", ".join(map(str, sorted(records)[:8]))
        raise InvalidParameterError(
            f"--idx {missing[0]} is not in {run_dir} (it holds {len(records)} inputs: {have}...); "
            "pass an idx the run certified"
        )
    dataset = load_data(config.data, config.split)
    noise = get_noise(config.noise)
    out = {}
    for i in wanted:
        r, m = records[i], memory.get(i)
        theta = np.full(dataset.input_shape, float(r.sigma)) if r.theta is None else r.theta
        out[i] = InputCertificate(
            idx=i,
            label=int(r.label),
            prediction=int(m.prediction if m else r.prediction),
            gap=float(m.gap if m else r.gap),
            theta=np.asarray(theta, dtype=np.float64).reshape(dataset.input_shape),
            sigma=float(r.sigma),
            anisotropic=r.theta is not None,
            fallback=bool(r.fallback),
            status=m.status if m else "none",
            method=config.method,
            noise=noise.name,
            norm=noise.norm,
        )
    return config, dataset, out


def largest_theta_perturbation(
    x, theta, gap: float, norm: str, iso_radius: float, *, fraction=0.99, margin=2.0, value_range=(0.0, 1.0)
):
    """A perturbation d along the largest-theta dimensions with ||d / theta||_p = fraction * gap.

    d_i = s_i a theta_i on the k largest theta_i (0 elsewhere), a = fraction * gap / k^(1/p), so that
    ||d / theta||_p = fraction * gap (inside the certified region when fraction < 1) and ||d||_p =
    fraction * gap * M_p, M_p the power mean (p = 2: root mean square, p = 1: mean) of the k largest
    theta. k is the largest count with ||d||_p >= margin * iso_radius; if none reaches it, k = 1 (the
    largest ||d||_p possible) when that still exceeds iso_radius, else no perturbation exists (k = 0,
    d = 0). Signs s_i point into value_range (up below its midpoint, down above), or are all + when
    value_range is None. x and theta have the same shape; returns (d of that shape, k).
    """
    x = np.asarray(x, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    flat = theta.reshape(-1)
    p = _P[norm]
    order = np.argsort(-flat, kind="stable")
    k_all = np.arange(1, flat.size + 1)
    power_mean = (np.cumsum(flat[order] ** p) / k_all) ** (1.0 / p)
    reach = fraction * gap * power_mean  # ||d||_p with the k largest theta
    ok = np.flatnonzero(reach >= margin * iso_radius)
    k = int(ok[-1] + 1) if ok.size else (1 if reach[0] > iso_radius else 0)
    d = np.zeros(flat.size)
    if k:
        top = order[:k]
        if value_range is None:
            sign = np.ones(k)
        else:
            sign = np.where(x.reshape(-1)[top] > 0.5 * (value_range[0] + value_range[1]), -1.0, 1.0)
        d[top] = sign * (fraction * gap / k ** (1.0 / p)) * flat[top]
    return d.reshape(theta.shape), k


@dataclass(frozen=True, eq=False)
class Perturbation:
    """x + d inside the anisotropic certificate, outside the isotropic ball, and the smoothed check there.

    x, d, theta: float64 arrays of the input's shape. scaled_norm = ||d / theta||_p (= fraction * gap),
    d_norm = ||d||_p, iso_radius the isotropic radius it is compared with. check_*: the smoothed
    classifier at x + d with the same theta on check_n fresh draws (seed check_seed): its prediction
    (-1 = abstain) and pA_lower.
    """

    certificate: InputCertificate
    x: np.ndarray
    d: np.ndarray
    k: int
    iso_radius: float
    scaled_norm: float
    d_norm: float
    check_prediction: int
    check_pA_lower: float
    check_n: int
    check_seed: int
    check_alpha: float

    @property
    def holds(self) -> bool:
        """Whether the smoothed classifier returns the certified class at x + d."""
        return self.check_prediction == self.certificate.prediction


def validate_shape(fraction, margin) -> None:
    """The perturbation's size (fraction of the gap) and reach (margin times the isotropic radius)."""
    _checks.check_real("fraction", fraction, high=1.0 + 1e-12, hint="; e.g. 0.99 (inside the region)")
    _checks.check_real("margin", margin, hint="; e.g. 2 (twice the isotropic radius)")


def validate_check(n, seed, device) -> None:
    """The options of the check at x + d, validated before any work (even when no input needs it)."""
    if n is not None:
        _checks.check_int("n", n, hint="; e.g. 2000")
    if seed is not None:
        _checks.check_int("seed", seed, min_value=0)
    if device:
        _checks.check_device(device)


def isotropic_radii(iso_run, config) -> dict[int, float]:
    """{idx: reported radius} of an isotropic run on the same data and noise ({} without one)."""
    if iso_run is None:
        return {}
    iso_config, _, certs = read_certificates(iso_run)
    if (iso_config.data, iso_config.split, iso_config.noise) != (config.data, config.split, config.noise):
        raise InvalidParameterError(
            f"--iso-run {iso_run} certifies {iso_config.data} ({iso_config.split}) with {iso_config.noise} "
            f"noise, not {config.data} ({config.split}) with {config.noise}; pass a matching isotropic run"
        )
    return {i: c.radius for i, c in certs.items()}


def perturb_certificate(
    config, dataset, cert, model, iso_radius, *, n, seed, fraction, margin
) -> Perturbation:
    """largest_theta_perturbation for cert, then CERTIFY at x + d with cert's theta (see perturb_input)."""
    import torch

    from ..core.smooth import Smoothed

    reason = cert.no_perturbation_reason()
    if reason:
        raise InputError(reason + "; pick an input of an ANCER run without fallback")
    x = dataset.get([cert.idx])[0].double().numpy()
    d, k = largest_theta_perturbation(
        x,
        cert.theta,
        cert.gap,
        cert.norm,
        iso_radius,
        fraction=fraction,
        margin=margin,
        value_range=dataset.value_range,
    )
    if k == 0:
        raise InputError(
            f"input {cert.idx}: no direction of the anisotropic region reaches beyond the isotropic "
            f"radius {iso_radius:.4g} (largest theta {cert.theta.max():.4g})"
        )
    seed = config.budget.seed + 1 if seed is None else _checks.check_int("seed", seed, min_value=0)
    n = config.budget.n if n is None else _checks.check_int("n", n, hint="; e.g. 2000")
    smoothed = Smoothed(model, cert.noise, batch_size=config.execution.batch_size)
    as_tensor = dict(dtype=torch.float32, device=smoothed.device)
    result = smoothed.certify(
        torch.as_tensor(x + d, **as_tensor)[None],
        torch.as_tensor(cert.theta, **as_tensor)[None],
        n0=config.budget.n0,
        n=n,
        alpha=config.budget.alpha,
        seed=seed,
        idx=[cert.idx],
    )
    p = _P[cert.norm]
    return Perturbation(
        certificate=cert,
        x=x,
        d=d,
        k=k,
        iso_radius=float(iso_radius),
        scaled_norm=float(np.linalg.norm((d / cert.theta).reshape(-1), ord=p)),
        d_norm=float(np.linalg.norm(d.reshape(-1), ord=p)),
        check_prediction=int(result.prediction[0]),
        check_pA_lower=float(result.pA_lower[0]),
        check_n=n,
        check_seed=seed,
        check_alpha=float(config.budget.alpha),
    )


def _weights_only(spec) -> bool:
    """Whether load_model reads `spec` as data only: builtin or safetensors weights, never a program,
    a factory or a pickle (the same dispatch order as anisocert.models.load_model)."""
    from ..models import is_model

    if not isinstance(spec, str):
        return False
    spec = spec.strip()
    if spec.startswith("builtin:"):
        return True
    path = Path(spec).expanduser()
    if path.is_file():
        return path.suffix.lower() == ".safetensors"
    if path.exists() or ":" not in spec:
        return False
    arch, weights = spec.split(":", 1)
    return is_model(arch) and Path(weights).suffix.lower() == ".safetensors"


def load_run_model(run_dir, config, *, model=None, device=None):
    """The module that checks perturbations of a run, without running code that the run names.

    A run directory may come from someone else, and its configuration can name any model spec. Without
    `model`, the run's own model is loaded only when it is builtin or safetensors weights (read as
    data) whose sha256 matches the one the run recorded; a factory, TorchScript, .pt2 program or
    pickle checkpoint is refused with ModelLoadError before anything is imported or read. `model` may
    be the caller's own spec (loaded as asked; it must be the run's model: the same sha256 when the
    run recorded one) or a torch module (used as it is).
    """
    from ..models import load_model

    if model is not None and not isinstance(model, str):
        return model
    stored = config.model_sha256 or ""
    if model is None:
        if not _weights_only(config.model):
            raise ModelLoadError(
                f"{run_dir} names the model {config.model!r}, which is code or a pickle, and anisocert loads "
                "only builtin or safetensors weights named by a run; pass --model with the run's model, "
                "from a source you trust"
            )
        if not stored:
            raise ModelLoadError(
                f"{run_dir} records no sha256 for its model {config.model}; pass --model with the run's "
                "model, from a source you trust"
            )
        origin = f"the model {config.model} named by {run_dir}"
        loaded = load_model(config.model, device=device)
    else:
        origin = f"--model {model}"
        loaded = load_model(model, device=device)
    if stored and loaded.sha256 != stored:
        raise ModelLoadError(
            f"{origin} is not the model {run_dir} was certified with (sha256 {str(loaded.sha256)[:12]}... "
            f"!= {stored[:12]}...); pass --model with the run's model"
        )
    return loaded.module


def perturb_input(
    run_dir, idx: int, *, iso_run=None, n=None, seed=None, fraction=0.99, margin=2.0, model=None, device=None
) -> Perturbation:
    """Perturb input idx of an ANCER run along its largest theta and check the smoothed prediction there.

    d comes from largest_theta_perturbation (||d / theta||_p = fraction * gap, so x + d lies inside the
    reported certificate). The isotropic radius it is compared with is max(min(theta) * gap, the radius
    `iso_run` reports for idx): the largest isotropic ball inside the anisotropic region, and the
    certificate of a separate isotropic run. The check runs CERTIFY at x + d with the same theta on
    n0 + n fresh draws (n defaults to the run's) seeded by `seed` (default: the run's seed + 1, so none
    of the run's draws is reused). `model` (a module, or a spec of the run's model) defaults to the
    run's own weights when those load as data (see load_run_model); it goes on `device`.

    Raises InputError when the input has no anisotropic certificate or no direction reaches beyond
    the isotropic radius, ModelLoadError when the run names a model that would run code.
    """
    validate_shape(fraction, margin)
    validate_check(n, seed, device)
    config, dataset, certs = read_certificates(run_dir, [idx])
    cert = certs[int(idx)]
    iso_radius = max(cert.radius, isotropic_radii(iso_run, config).get(cert.idx, 0.0))
    if cert.no_perturbation_reason() is None:
        model = load_run_model(run_dir, config, model=model, device=device)
    return perturb_certificate(
        config, dataset, cert, model, iso_radius, n=n, seed=seed, fraction=fraction, margin=margin
    )
