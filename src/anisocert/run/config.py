"""Run configuration: what to certify, then one validated section per concern (the budget, the isotropic
search, the theta search, the execution), with a stable hash (what a resume must match).

The stored and hashed form is flat, as it always was (``to_dict``: n0, iso_method, ancer_objective, ...),
so the hashes and run stores of existing runs stay valid; ``from_flat`` builds the nested config from
those names (the options of ``anisocert certify`` spelt with underscores).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import ClassVar

from .. import _checks
from ..core.noise import get_noise
from ..core.sequential import LookSchedule
from ..core.settings import FALLBACKS, Budget, SigmaSearch, ThetaSearch
from ..errors import InvalidParameterError, UnknownNameError

__all__ = [
    "CertifyConfig",
    "Execution",
    "FALLBACKS",
    "FLAT_FIELDS",
    "METHODS",
    "RESULT_FIELDS",
    "ancer_defaults",
]

METHODS = ("fixed", "isotropic", "ancer")
SAMPLERS = ("exact", "float")
MAX_BATCH_SIZE = 2**31 - 1  # noisy samples per forward pass: torch sizes beyond this are a typo
MAX_WORKERS = 1_000_000  # Ray workers: more is a typo (Ray itself refuses above 1e14 CPUs, with a traceback)


@dataclass(frozen=True)
class Execution:
    """How a run executes. None of it changes a record (a resume may change it freely), except the three
    settings of the forward pass (``HASHED``: channels_last, bf16, compile; smooth.BaseForward), which
    change its floating-point results and so are part of the run's hash."""

    HASHED: ClassVar[tuple[str, ...]] = ("channels_last", "bf16", "compile")

    batch_size: int = 1000  # noisy samples per forward pass
    inputs_per_batch: int = 8  # inputs certified together (the commit granularity)
    device: str | None = None
    label: str | None = None  # the run's name in reports
    workers: int = 1  # Ray workers (1: in this process)
    ray_address: str | None = None  # join this Ray cluster instead of starting one
    reuse: str | None = None  # a run directory whose optimisation (and isotropic counts) to take
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False  # CUDA only

    def __post_init__(self):
        _checks.check_int("batch-size", self.batch_size, max_value=MAX_BATCH_SIZE)
        _checks.check_int("inputs-per-batch", self.inputs_per_batch)
        _checks.check_int("workers", self.workers, max_value=MAX_WORKERS)
        if self.device:
            _checks.check_device(self.device)


# The flat names (stored, hashed, and the CLI's options) in their stored order -> (section, field);
# section None: a field of CertifyConfig itself.
_ISO = ("method", "iterations", "lr", "samples", "sigma_min", "sigma_max", "grid_points", "refine_steps")
_ANCER = ("iterations", "lr", "samples", "tol", "patience")
_CHECKS = ("samples", "steps", "margin")
_WHERE: dict[str, tuple[str | None, str]] = {
    **{k: (None, k) for k in ("model", "data", "split", "noise", "method", "sigma")},
    **{k: ("budget", k) for k in ("n0", "n", "alpha", "seed")},
    **{k: (None, k) for k in ("skip", "max_count", "indices")},
    **{f"iso_{k}": ("sigma_search", k) for k in _ISO},
    **{f"ancer_{k}": ("theta_search", k) for k in _ANCER},
    "kappa": ("theta_search", "kappa"),
    "ancer_objective": ("theta_search", "objective"),
    **{f"ancer_check_{k}": ("theta_search", f"check_{k}") for k in _CHECKS},
    **{k: (None, k) for k in ("fallback", "memory")},
    **{k: ("budget", k) for k in ("early_stop", "radii", "radii_on")},
    **{k: (None, k) for k in ("on_inside", "outputs")},
    **{k: (None, k) for k in ("sampler", "levels", "round_inputs")},
    **{k: ("execution", k) for k in Execution.HASHED},
    **{k: ("execution", k) for k in ("batch_size", "inputs_per_batch", "device", "label", "workers")},
    **{k: ("execution", k) for k in ("ray_address", "reuse")},
    "model_sha256": (None, "model_sha256"),
}
FLAT_FIELDS = tuple(_WHERE)
_SECTIONS = {
    "budget": Budget,
    "sigma_search": SigmaSearch,
    "theta_search": ThetaSearch,
    "execution": Execution,
}
# The run's defaults where they differ from the core's (the core's are the public ANCER procedure)
_RUN_DEFAULTS = {"sigma_search": {"method": "votes"}, "theta_search": {"objective": "certified"}}

# Fields that do not change any record: a resume may change them freely.
_EXECUTION_ONLY = {k for k, (s, _) in _WHERE.items() if s == "execution" and k not in Execution.HASHED}
_EXECUTION_ONLY.add("model_sha256")
# Settings of the certified ANCER objective: part of the hash only where they decide the records.
_CERTIFIED_OBJECTIVE = ("ancer_objective", "ancer_check_samples", "ancer_check_steps", "ancer_check_margin")


def ancer_defaults(data: str, objective: str | None = None) -> dict:
    """The ANCER settings of a run that names none, by data set and objective (flat names; a named setting
    wins). On the embedded 8x8 digits, where they were chosen (issue 15): the certified objective with
    fallback select and its cheap Adam budget (30 steps of 32 draws, step 0.04). On every other data set,
    real images: the certified objective with fallback off and Adam's step 0.2 over the public budget (100
    steps of 100 draws), which on 100 MNIST test digits per l2 model certified more volume than the paper
    objective at no loss of radius (docs/results.md, section 2); a named paper objective keeps the public
    step, 0.04, which its soft surrogate needs: a larger one costs radius there."""
    objective = objective or "certified"
    if str(data).split(":")[0] == "digits":
        return {"ancer_objective": objective, "fallback": "select"}
    defaults = {"ancer_objective": objective, "fallback": "off"}
    if objective == "certified":
        defaults.update(ancer_iterations=100, ancer_samples=100, ancer_lr=0.2)
    return defaults


def _section(name: str):
    """The default of a section of CertifyConfig: the core's settings with the run's defaults."""
    return field(default_factory=lambda: _SECTIONS[name](**_RUN_DEFAULTS.get(name, {})))


@dataclass(frozen=True)
class CertifyConfig:
    """What to certify (model, data, inputs, noise, method), then how, one validated section per concern.

    sigma is the training/initial isotropic scale: the standard deviation for gaussian noise, the half-width
    for uniform noise; noise and sigma left None are the model's training ones (its sidecar). alpha
    (budget.alpha) is one-sided, per input. A section built by hand starts from the core's defaults (the
    public ANCER: SigmaSearch's gradient, ThetaSearch's paper objective); the config's own defaults are the
    votes search, the certified objective and fallback select; ``from_flat`` and the CLI choose the
    fallback and Adam's budget by the data where none is named (ancer_defaults: select on the 8x8 digits;
    off, and a step of 0.2 for the certified objective, elsewhere).
    """

    model: str
    data: str = "digits"
    split: str = "test"
    noise: str | None = None  # default: the model's training noise (its sidecar), else gaussian
    method: str = "fixed"
    sigma: float | None = None  # default: the model's training sigma when the noise matches, else 0.25
    skip: int = 1
    max_count: int | None = None
    indices: tuple[int, ...] | None = None
    fallback: str = "select"  # ancer: one of FALLBACKS
    memory: bool = True  # memory-based certification for isotropic and ancer
    on_inside: str = "abstain"
    outputs: str = "logits"  # what the model returns (the loaded model's own setting wins in a run)
    sampler: str | None = None  # "exact" (noise rounded to the grid) or "float"; None: exact iff a grid
    levels: int | None = None  # the grid k / levels of the exact sampler; None: the data set's own
    round_inputs: bool = False  # exact sampler: round off-grid inputs to the grid instead of refusing them
    budget: Budget = _section("budget")
    sigma_search: SigmaSearch = _section("sigma_search")
    theta_search: ThetaSearch = _section("theta_search")
    execution: Execution = _section("execution")
    model_sha256: str = field(default="", compare=False)

    def __post_init__(self):
        for name, kind in _SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise InvalidParameterError(
                    f"{name}={getattr(self, name)!r} must be a {kind.__name__}; or build the config with "
                    "CertifyConfig.from_flat(n=..., iso_method=..., ...)"
                )
        self._resolve_training_noise()
        self._check_names()
        self._check_numbers()
        if self.indices is not None:
            object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))

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
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise UnknownNameError(f"sampler={self.sampler!r} is unknown; choose one of {list(SAMPLERS)}")
        if self.round_inputs and self.sampler == "float":
            raise InvalidParameterError(
                "--round rounds inputs for the exact sampler; drop it with --sampler float"
            )
        if self.fallback not in FALLBACKS:
            raise UnknownNameError(f"fallback={self.fallback!r} is unknown; choose one of {list(FALLBACKS)}")

    def _check_numbers(self) -> None:
        """The numbers outside the sections, and a budget that can certify at the alpha of each certificate
        (the sections checked their own when they were made)."""
        _checks.check_real("sigma", self.sigma, hint="; e.g. 0.25")
        _checks.check_int("skip", self.skip)
        if self.levels is not None:
            _checks.check_int("levels", self.levels, max_value=2**24)
        if self.max_count is not None:
            _checks.check_int("max", self.max_count)
        if self.effective_alpha != self.budget.alpha:
            self.budget.check_feasible(self.effective_alpha)

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

    def __getattr__(self, name: str):
        """Only for names not found: a flat setting read the old way says where it lives now."""
        section, field_name = _WHERE.get(name, (None, ""))
        if section:
            raise AttributeError(
                f"CertifyConfig.{name} is config.{section}.{field_name} (the settings are nested)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def effective_alpha(self) -> float:
        """alpha of each certificate: ancer with fallback 'both' issues two (iso and aniso) at alpha/2
        each, so the reported one holds with probability >= 1 - alpha (union bound)."""
        two = self.method == "ancer" and self.fallback == "both"
        return self.budget.alpha / 2 if two else self.budget.alpha

    @property
    def schedule(self):
        """The looks of sequential certification and alpha_k of each (None without radii); each
        certificate's schedule (alpha/2 each with fallback 'both')."""
        if self.budget.radii is None:
            return None
        return LookSchedule.geometric(self.budget.n, self.effective_alpha)

    def with_grid(self, data_levels: int | None) -> CertifyConfig:
        """The config with its sampler resolved for data whose grid is data_levels (None: no grid): exact
        whenever there is a grid (--levels or the data's), else float."""
        levels = self.levels if self.levels is not None else data_levels
        sampler = self.sampler or ("exact" if levels else "float")
        if sampler == "exact" and not levels:
            raise InvalidParameterError(
                f"--sampler exact needs a grid and --data {self.data} declares none: pass --levels L "
                "(inputs k / L) or --sampler float"
            )
        return replace(self, sampler=sampler, levels=levels if sampler == "exact" else None)

    def exact_sampler(self):
        """The ExactSampler of a resolved exact config, else None (float noise)."""
        if self.sampler != "exact":
            return None
        from ..core.exact import ExactSampler

        return ExactSampler(self.levels, rounding=self.round_inputs)

    @property
    def uses_memory(self) -> bool:
        return self.memory and self.method != "fixed"

    @property
    def theta_unit(self) -> str:
        return get_noise(self.noise).theta_unit

    # -- the flat form: building, storing, hashing --------------------------------------------------
    @classmethod
    def from_flat(cls, **values) -> CertifyConfig:
        """The config from flat settings, as the CLI and the stored runs name them: CertifyConfig.from_flat(
        model="builtin:digits-gaussian", method="ancer", n=10_000, iso_method="votes", kappa=2.0)."""
        unknown = [k for k in values if k not in _WHERE]
        if unknown:
            close = difflib.get_close_matches(unknown[0], FLAT_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the settings are FLAT_FIELDS of run/config.py"
            raise UnknownNameError(f"{unknown[0]!r} is not a setting of CertifyConfig; {hint}")
        parts: dict[str | None, dict] = {None: {}, **{s: dict(_RUN_DEFAULTS.get(s, {})) for s in _SECTIONS}}
        values = {**ancer_defaults(values.get("data", "digits"), values.get("ancer_objective")), **values}
        for key, value in values.items():
            section, name = _WHERE[key]
            parts[section][name] = value
        sections = {s: kind(**parts[s]) for s, kind in _SECTIONS.items()}
        return cls(**parts[None], **sections)

    def replace_flat(self, **changes) -> CertifyConfig:
        """A copy with these flat settings changed (validated again). Defaults resolved in this config carry
        over (Adam's budget, the sidecar's noise and sigma): changing the objective keeps its iterations."""
        return type(self).from_flat(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        """The flat form, in the stored order (what run.sqlite holds; read back by ``from_dict``)."""
        return {k: getattr(getattr(self, s) if s else self, name) for k, (s, name) in _WHERE.items()}

    @classmethod
    def from_dict(cls, values: dict) -> CertifyConfig:
        """A stored config: the flat form (every stored run), or sections as dicts; names no longer known
        are dropped (a run stored by an older anisocert)."""
        values = dict(values)
        for section in _SECTIONS:
            if isinstance(values.get(section), dict):
                inside = values.pop(section)
                values.update(
                    {k: inside[name] for k, (s, name) in _WHERE.items() if s == section and name in inside}
                )
        values = {k: v for k, v in values.items() if k in _WHERE}
        # runs stored before the certified objective existed used the public one, and the float sampler
        values.setdefault("ancer_objective", "paper")
        values.setdefault("sampler", "float")
        return cls.from_flat(**values)

    def result_dict(self) -> dict:
        """The fields that decide the records (the resume check), flat as they were always hashed."""
        d = {k: v for k, v in self.to_dict().items() if k not in _EXECUTION_ONLY}
        if self.method == "fixed":
            for k in list(d):
                if k.startswith(("iso_", "ancer_")) or k in ("kappa", "fallback", "on_inside", "memory"):
                    d.pop(k)
        if self.method != "ancer" or self.theta_search.objective == "paper":
            # the settings of the certified objective decide nothing here: leave them out, so that the hash
            # of a run stored before they existed (the public objective) stays what it was
            for k in _CERTIFIED_OBJECTIVE:
                d.pop(k, None)
        d["indices"] = list(d["indices"]) if d.get("indices") is not None else None
        if self.sampler in (None, "float"):  # the float sampler is what every run before the exact one used
            d.pop("sampler")
            d.pop("levels")
        if not self.round_inputs:
            d.pop("round_inputs")
        if self.budget.radii is None:  # runs made before sequential certification keep their hash
            d.pop("radii")
            d.pop("radii_on")
        else:
            d["radii"] = list(self.budget.radii)
        return d

    def result_hash(self) -> str:
        text = json.dumps(self.result_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


RESULT_FIELDS = tuple(k for k in FLAT_FIELDS if k not in _EXECUTION_ONLY)
