"""Settings of certification and of the noise searches, grouped by concern (torch-free: the CLI and the
run configuration import them without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANCER_OBJECTIVES", "FALLBACKS", "RADII_ON", "Budget", "SigmaSearch", "ThetaSearch"]

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


@dataclass(frozen=True)
class ThetaSearch:
    """How theta_x is found: projected Adam on the ANCER objective (optimise.optimise_theta); with objective
    'certified', then repaired along the path sigma_x -> Adam's theta by check_samples hard-vote draws,
    check_steps bisection steps and a margin (theta_search.repair_theta)."""

    iterations: int = 100
    lr: float = 0.04
    samples: int = 100
    kappa: float = 2.0
    tol: float | None = None
    patience: int = 10
    objective: str = "paper"
    check_samples: int = 500
    check_steps: int = 6
    check_margin: float = 1.0
