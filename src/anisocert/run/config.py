"""Run configuration: a frozen, validated dataclass with a stable hash (what a resume must match)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields

from .. import _checks
from ..core.noise import get_noise
from ..core.sequential import LookSchedule, parse_radii
from ..core.settings import ANCER_OBJECTIVES, FALLBACKS, RADII_ON, Budget, SigmaSearch, ThetaSearch
from ..errors import InvalidParameterError, UnknownNameError

__all__ = ["CertifyConfig", "FALLBACKS", "METHODS", "RESULT_FIELDS"]

METHODS = ("fixed", "isotropic", "ancer")
MAX_BATCH_SIZE = 2**31 - 1  # noisy samples per forward pass: torch sizes beyond this are a typo
MAX_WORKERS = 1_000_000  # Ray workers: more is a typo (Ray itself refuses above 1e14 CPUs, with a traceback)

# Fields that do not change any record: a resume may change them freely.
_EXECUTION_ONLY = {
    "batch_size",
    "inputs_per_batch",
    "device",
    "label",
    "model_sha256",
    "reuse",
    "workers",
    "ray_address",
}

# Settings of the certified ANCER objective: part of the hash only where they decide the records.
_CERTIFIED_OBJECTIVE = ("ancer_objective", "ancer_check_samples", "ancer_check_steps", "ancer_check_margin")


# Integer settings that must be >= 1.
_POSITIVE_INTS = (
    "iso_iterations",
    "iso_samples",
    "ancer_iterations",
    "ancer_samples",
    "batch_size",
    "inputs_per_batch",
    "workers",
    "iso_grid_points",
    "iso_refine_steps",
    "ancer_patience",
    "ancer_check_samples",
    "ancer_check_steps",
)


@dataclass(frozen=True)
class CertifyConfig:
    """Everything that decides a run's records (and a few execution knobs that do not).

    sigma is the training/initial isotropic scale: the standard deviation for gaussian noise,
    the half-width for uniform noise. alpha is one-sided, per input.
    """

    model: str
    data: str = "digits"
    split: str = "test"
    noise: str | None = None  # default: the model's training noise (its sidecar), else gaussian
    method: str = "fixed"
    sigma: float | None = None  # default: the model's training sigma when the noise matches, else 0.25
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    seed: int = 0
    skip: int = 1
    max_count: int | None = None
    indices: tuple[int, ...] | None = None
    # isotropic data-dependent sigma (DDRS); public defaults
    iso_method: str = "votes"  # the public DDRS ascent is "gradient" (README: which default is which)
    iso_iterations: int = 900
    iso_lr: float = 0.04
    iso_samples: int = 100
    iso_sigma_min: float | None = None  # default sigma / 10
    iso_sigma_max: float | None = None  # default: none for the gradient, 10 * sigma for the searches
    iso_grid_points: int = 8  # searches: log-spaced grid, then golden-section steps
    iso_refine_steps: int = 6
    # ANCER theta; public defaults
    ancer_iterations: int | None = None  # default: 100 for the paper objective, 30 for the certified one
    ancer_lr: float = 0.04
    ancer_samples: int | None = None  # default: 100 for the paper objective, 32 for the certified one
    ancer_tol: float | None = None  # stop an input when J gains less than tol (relative) in patience steps
    ancer_patience: int = 10
    kappa: float = 2.0
    # what theta_x maximises (ANCER_OBJECTIVES): certified (Adam's theta repaired by hard-vote checks) | paper
    ancer_objective: str = "certified"
    ancer_check_samples: int = 500  # certified: check draws per input (Phase.THETA_CHECK)
    ancer_check_steps: int = 6  # certified: bisection steps along the path sigma_x -> Adam's theta
    ancer_check_margin: float = 1.0  # certified: z; the check share is lowered by z * sqrt(flips) / m
    fallback: str = "select"  # ancer: one of FALLBACKS
    memory: bool = True  # memory-based certification for isotropic and ancer
    early_stop: bool = True  # stop drawing once the outcome (abstain, fallback) is settled
    # sequential certification for a grid of radii (core/sequential.py); None: fixed n (left out of the hash)
    radii: tuple[float, ...] | None = None
    radii_on: str = "radius"  # the grid is on the radius or (ancer) on the proxy radius
    on_inside: str = "abstain"
    outputs: str = "logits"
    # how certification evaluates the base classifier (smooth.BaseForward): part of the result
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False  # CUDA only
    # execution only
    batch_size: int = 1000
    inputs_per_batch: int = 8
    device: str | None = None
    label: str | None = None
    workers: int = 1  # Ray workers (1: in this process)
    ray_address: str | None = None  # join this Ray cluster instead of starting one
    reuse: str | None = None  # a run directory whose optimisation (and isotropic counts) to take
    model_sha256: str = field(default="", compare=False)

    def __post_init__(self):
        self._resolve_training_noise()
        self._check_names()
        self._resolve_ancer_budget()
        self._check_numbers()
        if self.indices is not None:
            object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
        if self.radii is not None:
            grid = parse_radii(self.radii)
            object.__setattr__(self, "radii", tuple(float(r) for r in grid[1:]))
            _checks.check_budget(self.n0, self.n, self.schedule.alphas[-1])

    def _check_names(self) -> None:
        """Every named choice is one of its kind (one line naming the choices otherwise)."""
        get_noise(self.noise)
        if self.method not in METHODS:
            raise UnknownNameError(f"method={self.method!r} is unknown; choose one of {list(METHODS)}")
        if self.on_inside not in ("abstain", "adopt"):
            raise UnknownNameError(f"on_inside={self.on_inside!r} is unknown; choose 'abstain' or 'adopt'")
        if self.outputs not in ("logits", "probabilities"):
            raise UnknownNameError(f"outputs={self.outputs!r} is unknown; choose 'logits' or 'probabilities'")
        if isinstance(self.fallback, bool):  # configs stored before the modes: True was "both"
            object.__setattr__(self, "fallback", "both" if self.fallback else "off")
        if self.fallback not in FALLBACKS:
            raise UnknownNameError(f"fallback={self.fallback!r} is unknown; choose one of {list(FALLBACKS)}")
        if self.ancer_objective not in ANCER_OBJECTIVES:
            raise UnknownNameError(
                f"ancer_objective={self.ancer_objective!r} is unknown; choose one of {list(ANCER_OBJECTIVES)}"
            )
        if self.iso_method not in ("gradient", "search", "votes"):
            raise UnknownNameError(
                f"iso_method={self.iso_method!r} is unknown; choose 'gradient', 'search' or 'votes'"
            )
        _checks.check_choice("radii-on", self.radii_on, RADII_ON)

    def _resolve_ancer_budget(self) -> None:
        """Adam's budget: the public one for the paper objective; a cheaper direction for the certified one,
        whose hard-vote repair decides the step (docs/benchmarks.md, issue 15)."""
        paper = self.ancer_objective == "paper"
        if self.ancer_iterations is None:
            object.__setattr__(self, "ancer_iterations", 100 if paper else 30)
        if self.ancer_samples is None:
            object.__setattr__(self, "ancer_samples", 100 if paper else 32)

    def _check_numbers(self) -> None:
        """Every number in its range, and a budget that can certify at all."""
        if not (0 <= self.ancer_check_margin < math.inf):
            raise InvalidParameterError(
                f"ancer_check_margin={self.ancer_check_margin!r} must be finite and >= 0"
            )
        _checks.check_real("sigma", self.sigma, hint="; e.g. 0.25")
        _checks.check_budget(self.n0, self.n, self.effective_alpha)
        _checks.check_alpha(self.alpha)
        _checks.check_int("seed", self.seed, min_value=0)
        _checks.check_int("skip", self.skip)
        if self.max_count is not None:
            _checks.check_int("max", self.max_count)
        for name in _POSITIVE_INTS:
            _checks.check_int(name.replace("_", "-"), getattr(self, name))
        _checks.check_int("batch-size", self.batch_size, max_value=MAX_BATCH_SIZE)
        _checks.check_int("workers", self.workers, max_value=MAX_WORKERS)
        for name in ("iso_lr", "ancer_lr"):
            _checks.check_real(name.replace("_", "-"), getattr(self, name))
        for name in ("iso_sigma_min", "iso_sigma_max", "ancer_tol"):
            if getattr(self, name) is not None:
                _checks.check_real(name.replace("_", "-"), getattr(self, name))
        if not (0 <= self.kappa < math.inf):
            raise InvalidParameterError(
                f"kappa={self.kappa!r} must be finite and >= 0; the public default is 2"
            )
        if self.device:
            _checks.check_device(self.device)

    def _resolve_training_noise(self) -> None:
        """noise and sigma left None: what the model was trained with (its sidecar), else gaussian 0.25.
        Resolved here so that the CLI and the Python API certify the same way."""
        if self.noise is not None and self.sigma is not None:
            return
        from ..models import training_noise

        trained = training_noise(self.model)
        if self.noise is None:
            object.__setattr__(self, "noise", trained[0] if trained else "gaussian")
        if self.sigma is None:
            object.__setattr__(self, "sigma", trained[1] if trained and trained[0] == self.noise else 0.25)

    @property
    def effective_alpha(self) -> float:
        """alpha of each certificate: ancer with fallback 'both' issues two (iso and aniso) at alpha/2
        each, so the reported one holds with probability >= 1 - alpha (union bound)."""
        two = self.method == "ancer" and self.fallback == "both"
        return self.alpha / 2 if two else self.alpha

    @property
    def budget(self) -> Budget:
        """Draws and confidence of each input's certificate (alpha: the whole per-input alpha)."""
        return Budget(
            n0=self.n0,
            n=self.n,
            alpha=self.alpha,
            seed=self.seed,
            early_stop=self.early_stop,
            radii=self.radii,
            radii_on=self.radii_on,
        )

    @property
    def schedule(self):
        """The looks of sequential certification and alpha_k of each (None without radii); each
        certificate's schedule (alpha/2 each with fallback 'both')."""
        if self.radii is None:
            return None
        return LookSchedule.geometric(self.n, self.effective_alpha)

    @property
    def sigma_search(self) -> SigmaSearch:
        """The isotropic sigma_x search (DDRS) settings."""
        return SigmaSearch(
            method=self.iso_method,
            iterations=self.iso_iterations,
            lr=self.iso_lr,
            samples=self.iso_samples,
            sigma_min=self.iso_sigma_min,
            sigma_max=self.iso_sigma_max,
            grid_points=self.iso_grid_points,
            refine_steps=self.iso_refine_steps,
        )

    @property
    def theta_search(self) -> ThetaSearch:
        """The ANCER theta_x search settings."""
        return ThetaSearch(
            iterations=self.ancer_iterations,
            lr=self.ancer_lr,
            samples=self.ancer_samples,
            kappa=self.kappa,
            tol=self.ancer_tol,
            patience=self.ancer_patience,
            objective=self.ancer_objective,
            check_samples=self.ancer_check_samples,
            check_steps=self.ancer_check_steps,
            check_margin=self.ancer_check_margin,
        )

    @property
    def uses_memory(self) -> bool:
        return self.memory and self.method != "fixed"

    @property
    def theta_unit(self) -> str:
        return get_noise(self.noise).theta_unit

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CertifyConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        # runs stored before the certified objective existed used the public one
        values.setdefault("ancer_objective", "paper")
        return cls(**values)

    def result_dict(self) -> dict:
        """The fields that decide the records (the resume check)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _EXECUTION_ONLY}
        if self.method == "fixed":
            for k in list(d):
                if k.startswith(("iso_", "ancer_")) or k in ("kappa", "fallback", "on_inside", "memory"):
                    d.pop(k)
        if self.method != "ancer" or self.ancer_objective == "paper":
            # the settings of the certified objective decide nothing here: leave them out, so that the hash
            # of a run stored before they existed (the public objective) stays what it was
            for k in _CERTIFIED_OBJECTIVE:
                d.pop(k, None)
        d["indices"] = list(d["indices"]) if d.get("indices") is not None else None
        if self.radii is None:  # runs made before sequential certification keep their hash
            d.pop("radii")
            d.pop("radii_on")
        else:
            d["radii"] = list(self.radii)
        return d

    def result_hash(self) -> str:
        text = json.dumps(self.result_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


RESULT_FIELDS = tuple(f.name for f in fields(CertifyConfig) if f.name not in _EXECUTION_ONLY)
