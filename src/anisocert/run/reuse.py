"""Reuse another run's work: its optimised sigma / theta, its isotropic certificates' counts, and, when it
is this very run on another selection of inputs (other --skip / --max / --indices), its certificates.

All are exact reuse, not approximations. The optimisation of input i depends only on (model, data,
noise, start sigma, seed, optimiser settings, i), so a run with the same settings would compute the
same sigma_x / theta_x. An isotropic run's counts are the draws of the ESTIMATE stream of (seed, i)
at sigma_x, which are the draws the ANCER fallback's isotropic certificate would make: only its
bound changes (alpha/2 with fallback 'both'). An input's certificate depends on (settings, seed, i) only,
never on which other inputs the run certifies, so the same run on another selection holds, for every input
the two share, the very certificate this run would compute. Any setting that would change the result is
refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.certificates import Certificate, Certificates
from ..errors import InputError
from .config import CertifyConfig
from .store import RunStore

__all__ = ["Reused", "load_reused"]

# What decides the optimisation results (sigma_x first, then theta_x for ancer).
_SIGMA_FIELDS = ("data", "split", "noise", "sigma", "seed", "outputs", "iso_method", "iso_iterations")
_SIGMA_FIELDS += (
    "iso_lr",
    "iso_samples",
    "iso_sigma_min",
    "iso_sigma_max",
    "iso_grid_points",
    "iso_refine_steps",
)
_VOTES_FIELDS = ("n", "alpha")  # the votes search aims at the certification budget
_THETA_FIELDS = ("ancer_iterations", "ancer_lr", "ancer_samples", "kappa", "ancer_tol", "ancer_patience")
_THETA_FIELDS += ("ancer_objective",)
# the certified objective's checks also aim at the certification budget
_CHECK_FIELDS = ("ancer_check_samples", "ancer_check_steps", "ancer_check_margin", "n", "alpha")
# What decides an isotropic certificate's counts (given sigma_x).
_COUNT_FIELDS = ("n0", "n", "sampler", "levels", "round_inputs")
# Which inputs a run certifies: runs that differ only here hold the same certificate for every input they share.
_SELECTION_FIELDS = ("skip", "max_count", "indices")


@dataclass
class Reused:
    """What a run takes from another: optimisation rows (RunStore.optimised() layout, theta may be None
    when only sigma is reusable) and isotropic certificates whose counts can serve as the fallback."""

    source: Path | None = None
    optimised: dict = field(default_factory=dict)
    iso_records: dict[int, Certificate] = field(default_factory=dict)
    certificates: dict[int, Certificate] = field(default_factory=dict)  # the same run, another selection

    def certificates_for(self, indices, have: dict) -> Certificates | None:
        """The source's certificates of the selected inputs we do not have yet (raw, before memory)."""
        rows = [self.certificates[i] for i in indices if i not in have and i in self.certificates]
        return Certificates.from_rows(rows) if rows else None

    def rows_for(self, indices, have: dict, need_theta: bool) -> list[tuple]:
        """Complete optimisation rows for inputs we do not have yet (ready for RunStore.add_optimised)."""
        out = []
        for i in indices:
            row = self.optimised.get(i)
            if i in have or row is None or (need_theta and row[1] is None):
                continue
            out.append((i, row[0], row[1] if need_theta else None, row[2], row[3] if need_theta else 0.0))
        return out

    def partial(self, indices, have: dict) -> dict:
        """sigma-only rows (theta still to optimise) for inputs we do not have yet."""
        return {i: (r[0], None, r[2], 0.0) for i in indices if i not in have and (r := self.optimised.get(i))}


def load_reused(config: CertifyConfig, model_sha256: str) -> Reused:
    """Read config.execution.reuse (a run directory) and keep what this run may take from it; refuse a mismatch."""
    if not config.execution.reuse:
        return Reused()
    source = RunStore.read(config.execution.reuse)
    try:
        other, have_model = source.config, source.meta().get("model_sha256", "")
        if model_sha256 and have_model and model_sha256 != have_model:
            raise InputError(
                f"--reuse {config.execution.reuse} was made with another model (sha256 {have_model[:12]}...); give a run of this --model"
            )
        same = _same_run(config, other, bool(model_sha256 and have_model))
        optimised = source.optimised()
        # whole certificates from the same run; otherwise only an isotropic run's counts (the fallback's draws)
        records = (
            {c.idx: c for c in source.certificates().rows()} if same or other.method == "isotropic" else {}
        )
    finally:
        source.close()
    if same:
        return Reused(Path(config.execution.reuse), optimised, {}, records)
    if config.method == "fixed":
        raise InputError(
            "--reuse takes optimisation results; use it with --method isotropic or ancer (a fixed run takes "
            "only the certificates of the same run on another selection: same settings, other --skip/--max/--indices)"
        )
    if other.method == "fixed" or not optimised:
        raise InputError(
            f"--reuse {config.execution.reuse} holds no optimised sigma (method {other.method}); give an isotropic or ancer run"
        )
    _require_same(
        config, other, _SIGMA_FIELDS + (_VOTES_FIELDS if config.sigma_search.method == "votes" else ())
    )
    if config.method == "ancer" and other.method == "ancer":
        _require_same(config, other, _THETA_FIELDS)
        if config.theta_search.objective == "certified":
            _require_same(config, other, _CHECK_FIELDS)
    if config.method == "isotropic":
        optimised = {i: (s, None, a, 0.0) for i, (s, _, a, _) in optimised.items()}
    iso_ok = (
        config.method == "ancer"
        and other.method == "isotropic"  # only an isotropic run's counts are the fallback's draws
        and config.fallback != "off"
        and config.budget.radii is None  # sequential counts stop at a look: not a fixed-n certificate's draws
        and other.budget.radii is None
        and all(config.to_dict()[f] == other.to_dict()[f] for f in _COUNT_FIELDS)
    )
    return Reused(
        Path(config.execution.reuse), optimised, _full_counts(records, config.budget.n) if iso_ok else {}
    )


def _same_run(config: CertifyConfig, other: CertifyConfig, same_model: bool) -> bool:
    """The source is this run on another selection: every setting that decides a record is the same,
    and so is the model (by sha256 where both runs know it, else by name)."""
    here, there = config.result_dict(), other.result_dict()
    ignore = _SELECTION_FIELDS + (("model",) if same_model else ())  # a file and a builtin name: one sha256
    return {k: v for k, v in here.items() if k not in ignore} == {
        k: v for k, v in there.items() if k not in ignore
    }


def _require_same(config: CertifyConfig, other: CertifyConfig, names) -> None:
    """Refuse a source run whose settings (flat names, as stored) differ from this run's."""
    here, there = config.to_dict(), other.to_dict()
    diff = [f"{n} ({there[n]!r} there, {here[n]!r} here)" for n in names if here[n] != there[n]]
    if diff:
        raise InputError(
            f"--reuse {config.execution.reuse} was optimised with other settings: {', '.join(diff)}; match them or drop --reuse"
        )


def _full_counts(records: dict[int, Certificate], n: int) -> dict[int, Certificate]:
    """Records whose counts stand for the full n draws: all n drawn, or an early-stopped abstention
    (abstaining at alpha, it abstains at alpha/2 too whatever the undrawn draws were)."""
    return {i: r for i, r in records.items() if int(np.sum(r.counts)) == n or r.prediction < 0}
