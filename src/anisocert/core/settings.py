"""Settings of certification and of the noise searches, grouped by concern, each validated where it is made
(torch-free: the CLI and the run configuration import them without loading torch; the validators load it
only when a section is built).

A bad value is refused in one line that names the setting as the command line and
``CertifyConfig.from_flat`` spell it (n0, alpha, iso-lr, ancer_objective, kappa, ...)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidParameterError, UnknownNameError

__all__ = [
    "ANCER_OBJECTIVES",
    "FALLBACKS",
    "RADII_ON",
    "SIGMA_METHODS",
    "Budget",
    "SigmaSearch",
    "ThetaSearch",
]

# How ancer keeps its region a superset of the isotropic certificate (core/ancer.py):
# both: certify the isotropic region too, alpha/2 each (union bound), report the larger;
# select: the n0 selection draws at sigma_x and theta_x choose which one to certify, at alpha;
# off: certify theta_x only (the public code).
FALLBACKS = ("both", "select", "off")
# What theta_x maximises: certified (ANCER's Adam direction, then the largest step along it whose hard-vote
# forecast radius keeps the isotropic one: core/theta_search.py) | paper (the public ANCER objective alone).
ANCER_OBJECTIVES = ("certified", "paper")
RADII_ON = ("radius", "proxy")  # what sequential certification's grid is on (proxy: ancer's volume radius)


@dataclass(frozen=True)
class Budget:
    """Draws and confidence of a certificate: n0 selection and n estimation draws, one-sided alpha per
    input, the seed naming every stream, and the early stop (same records, fewer draws). radii: sequential
    certification for that grid (core/sequential.py), the grid on radii_on ("radius" or "proxy")."""

    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    seed: int = 0
    early_stop: bool = True
    radii: tuple[float, ...] | None = None
    radii_on: str = "radius"

    def __post_init__(self):
        from .. import _checks

        _checks.check_choice("radii-on", self.radii_on, RADII_ON)
        _checks.check_budget(self.n0, self.n, self.alpha)
        _checks.check_int("seed", self.seed, min_value=0)
        if self.radii is not None:
            from .sequential import parse_radii

            object.__setattr__(self, "radii", tuple(float(r) for r in parse_radii(self.radii)[1:]))
        self.check_feasible(self.alpha)

    def check_feasible(self, alpha: float) -> None:
        """Refuse (n0, n) that could never certify at alpha (with radii: at the last look's alpha). alpha is
        the budget's own, or what each certificate gets when a run issues two (ancer, fallback both)."""
        from .. import _checks

        _checks.check_budget(self.n0, self.n, alpha)
        if self.radii is not None:
            from .sequential import LookSchedule

            _checks.check_budget(self.n0, self.n, LookSchedule.geometric(self.n, alpha).alphas[-1])


SIGMA_METHODS = ("gradient", "search", "votes")


@dataclass(frozen=True)
class SigmaSearch:
    """How sigma_x is found (optimise.optimise_sigma): 'gradient' (public DDRS ascent), 'search' (the same
    surrogate on common draws) or 'votes' (the radius certification reports, from hard votes)."""

    method: str = "gradient"
    iterations: int = 900
    lr: float = 0.04
    samples: int = 100
    sigma_min: float | None = None
    sigma_max: float | None = None
    grid_points: int = 8
    refine_steps: int = 6

    def __post_init__(self):
        from .. import _checks

        if self.method not in SIGMA_METHODS:
            raise UnknownNameError(
                f"iso_method={self.method!r} is unknown; choose 'gradient', 'search' or 'votes'"
            )
        for name in ("iterations", "samples", "grid_points", "refine_steps"):
            _checks.check_int(f"iso-{name.replace('_', '-')}", getattr(self, name))
        _checks.check_real("iso-lr", self.lr)
        for name in ("sigma_min", "sigma_max"):
            if getattr(self, name) is not None:
                _checks.check_real(f"iso-{name.replace('_', '-')}", getattr(self, name))


@dataclass(frozen=True)
class ThetaSearch:
    """How theta_x is found: projected Adam on the ANCER objective (optimise.optimise_theta); with objective
    'certified', then repaired along the path sigma_x -> Adam's theta by check_samples hard-vote draws,
    check_steps bisection steps and a margin (theta_search.repair_theta)."""

    iterations: int | None = None  # default: 100 for the paper objective, 30 for the certified one
    lr: float = 0.04
    samples: int | None = None  # default: 100 for the paper objective, 32 for the certified one
    kappa: float = 2.0
    tol: float | None = None
    patience: int = 10
    objective: str = "paper"
    check_samples: int = 500
    check_steps: int = 6
    check_margin: float = 1.0

    def __post_init__(self):
        if self.objective not in ANCER_OBJECTIVES:
            raise UnknownNameError(
                f"ancer_objective={self.objective!r} is unknown; choose one of {list(ANCER_OBJECTIVES)}"
            )
        # Adam's budget: the public one for the paper objective; a cheaper direction for the certified one,
        # whose hard-vote repair decides the step (docs/benchmarks.md, issue 15)
        paper = self.objective == "paper"
        if self.iterations is None:
            object.__setattr__(self, "iterations", 100 if paper else 30)
        if self.samples is None:
            object.__setattr__(self, "samples", 100 if paper else 32)
        self._check_numbers()

    def _check_numbers(self) -> None:
        from .. import _checks

        if not (0 <= self.check_margin < math.inf):
            raise InvalidParameterError(f"ancer_check_margin={self.check_margin!r} must be finite and >= 0")
        for name in ("iterations", "samples", "patience", "check_samples", "check_steps"):
            _checks.check_int(f"ancer-{name.replace('_', '-')}", getattr(self, name))
        _checks.check_real("ancer-lr", self.lr)
        if self.tol is not None:
            _checks.check_real("ancer-tol", self.tol)
        if not (0 <= self.kappa < math.inf):
            raise InvalidParameterError(
                f"kappa={self.kappa!r} must be finite and >= 0; the public default is 2"
            )
