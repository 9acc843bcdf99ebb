"""TrainConfig: everything that decides a trained model, validated once, with the papers' defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .. import _checks
from ..core.noise import get_noise
from ..errors import InvalidParameterError, UnknownNameError

__all__ = ["TrainConfig", "SCHEDULES", "EXECUTION_ONLY", "NOT_WEIGHTS", "RECORDED_IF_USED"]

SCHEDULES = ("cosine", "step")

# Fields that do not change the trained weights' meaning: a resume may change them.
EXECUTION_ONLY = ("device", "eval_batch_size", "workers")
NOT_WEIGHTS = ("val_data",)  # recorded and reproduced, but does not decide the weights (nor a resume)
# Fields added after models were shipped: in result_dict only when they differ from the default or belong to
# the method, so the configurations recorded by earlier runs (sidecars, resume states) still match.
RECORDED_IF_USED = (
    "aniso_field",
    "aniso_max_scale",
    "aniso_iso_fraction",
    "aniso_grid",
    "aniso_margin",
    "aniso_iso_max_scale",
    "clamp_input",
    "init",
)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, architecture, method, noise scale, optimiser and method hyper-parameters.

    sigma is the training noise scale. For gaussian noise (methods gaussian, smoothadv, macer) it is the
    standard deviation. For uniform noise (methods uniform, stability) it is the half-width of
    U[-sigma, sigma], unless ``sigma_is_std`` is set: then sigma is read as the standard deviation (the
    convention of Yang et al.'s RS4A tables) and the half-width is ``sqrt(3) * sigma`` (see ``theta``).
    Method hyper-parameters default to the papers' (Salman et al. 2019; Zhai et al. 2020; Yang et al.
    2020); those of other methods are ignored.
    """

    arch: str = "digits_cnn"
    clamp_input: bool = False  # architecture option: clamp inputs to [0, 1] before the first layer
    data: str = "digits"
    val_data: str | None = None  # held-out set (its test split); None: data's test split (npz: none)
    init: str | None = None  # warm start: a model spec whose weights replace the random initialisation
    method: str = "gaussian"
    sigma: float = 0.25
    sigma_is_std: bool = False
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False  # Nesterov momentum (RS4A's and ANCER's l1 training scripts use it)
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    lr_step: int = 30  # step schedule: multiply the learning rate by lr_gamma every lr_step epochs
    lr_gamma: float = 0.1
    seed: int = 0
    # SmoothAdv (Salman et al.): PGD-l2 on the soft smoothed classifier
    smoothadv_eps: float = 0.25  # train_pgd.py: --epsilon 64 divided by 256 (not 255)
    smoothadv_steps: int = 10
    smoothadv_samples: int = 1  # m noise draws per input, shared by the attack and the training loss
    smoothadv_warmup: int = 10  # epochs over which eps grows linearly to smoothadv_eps (1: no warm-up)
    # MACER (Zhai et al.): soft smoothed cross-entropy + lambda * sigma/2 * (gamma - xi) where 0 <= xi <= gamma
    macer_gauss_num: int = 16
    macer_lambda: float = 12.0
    macer_gamma: float = 8.0
    macer_beta: float = 16.0
    macer_deferred: int = 0  # first epochs trained without the robustness term (lambda = 0); 0 = never
    # stability training (Yang et al., after Li et al.): CE(x1) + weight * KL(p(x1) || p(x2))
    stability_weight: float = 6.0
    # anisotropic (issue 23): theta = sigma * s, s a random field in [1, aniso_max_scale] (train/anisotropic.py)
    aniso_field: str = "pixel"  # pixel | smooth | background
    aniso_max_scale: float = 8.0  # K
    aniso_iso_fraction: float = 0.5  # share of each batch under plain isotropic noise
    aniso_grid: int = 4  # smooth field: coarse cells per side
    aniso_margin: int = 1  # background field: pixels within this distance of a stroke keep s = 1
    aniso_iso_max_scale: float = 1.0  # C: the isotropic share's theta = sigma * c, c log-uniform in [1, C]
    # execution
    amp: bool = False  # mixed precision: float16 + gradient scaling, CUDA only (refused elsewhere)
    eval_batch_size: int = 500
    device: str | None = None
    workers: int | None = None  # data-loading processes for decoded/augmented image sets; None: min(8, cpus)

    def __post_init__(self):
        from .objectives import OBJECTIVES

        if self.method not in OBJECTIVES:
            raise UnknownNameError(f"method={self.method!r} is unknown; choose one of {sorted(OBJECTIVES)}")
        if self.schedule not in SCHEDULES:
            raise UnknownNameError(f"schedule={self.schedule!r} is unknown; choose one of {list(SCHEDULES)}")
        _checks.check_real("sigma", self.sigma, hint="; e.g. 0.25")
        if self.sigma_is_std and self.noise != "uniform":
            raise InvalidParameterError(
                f"sigma_is_std=True converts a uniform-noise standard deviation to the half-width; method "
                f"{self.method!r} uses {self.noise} noise whose sigma is already the standard deviation: drop it"
            )
        for name in (
            "epochs",
            "batch_size",
            "lr_step",
            "smoothadv_steps",
            "smoothadv_samples",
            "smoothadv_warmup",
            "macer_gauss_num",
            "eval_batch_size",
            "aniso_grid",
        ):
            _checks.check_int(name.replace("_", "-"), getattr(self, name))
        self._check_anisotropic()
        _checks.check_int("seed", self.seed, min_value=0)
        _checks.check_int("macer-deferred", self.macer_deferred, min_value=0)
        if self.workers is not None:
            _checks.check_int("workers", self.workers, min_value=0)
        if self.val_data is not None and (not isinstance(self.val_data, str) or not self.val_data.strip()):
            raise InvalidParameterError(f"val-data={self.val_data!r} must be a data spec such as mnist")
        if self.init is not None and (not isinstance(self.init, str) or not self.init.strip()):
            raise InvalidParameterError(
                f"init={self.init!r} must be a model such as builtin:mnist-gaussian-0.25 or m.safetensors"
            )
        for name in ("lr", "smoothadv_eps", "macer_beta"):
            _checks.check_real(name.replace("_", "-"), getattr(self, name))
        _checks.check_real("lr-gamma", self.lr_gamma, high=1.0 + 1e-12)
        _checks.check_real("momentum", self.momentum, low=-1e-12, high=1.0)
        if self.nesterov and self.momentum == 0:
            raise InvalidParameterError("nesterov=True needs momentum > 0 (e.g. --momentum 0.9)")
        for name in ("weight_decay", "macer_lambda", "macer_gamma", "stability_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < math.inf):
                raise InvalidParameterError(
                    f"{name.replace('_', '-')}={value!r} must be a finite number >= 0"
                )
        if self.method == "macer" and self.macer_gauss_num < 2:
            raise InvalidParameterError(
                f"macer-gauss-num={self.macer_gauss_num} must be >= 2 (the soft smoothed classifier needs "
                "several draws); the paper uses 16"
            )

    def _check_anisotropic(self) -> None:
        from .anisotropic import FIELDS

        _checks.check_choice("aniso-field", self.aniso_field, FIELDS)
        _checks.check_int("aniso-margin", self.aniso_margin, min_value=0)
        for name, example in (("aniso_max_scale", 8), ("aniso_iso_max_scale", 1.5)):  # factors: 1 = sigma
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (1 <= v < math.inf):
                flag = name.replace("_", "-")
                raise InvalidParameterError(f"{flag}={v!r} must be a finite number >= 1; e.g. {example}")
        f = self.aniso_iso_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not (0 <= f <= 1):
            raise InvalidParameterError(f"aniso-iso-fraction={f!r} must be in [0, 1]; e.g. 0.5")
        if not isinstance(self.clamp_input, bool):
            raise InvalidParameterError(f"clamp-input={self.clamp_input!r} must be True or False")

    @property
    def arch_options(self) -> dict:
        """Options passed to create_model (only those that differ from the architecture's defaults)."""
        return {"clamp_input": True} if self.clamp_input else {}

    @property
    def noise(self) -> str:
        """The noise family the method trains with (and the model should be certified with)."""
        from .objectives import OBJECTIVES

        return OBJECTIVES[self.method].noise

    @property
    def theta(self) -> float:
        """The scale passed to the noise family: std (gaussian) or half-width (uniform)."""
        return math.sqrt(3.0) * self.sigma if self.sigma_is_std else float(self.sigma)

    @property
    def theta_convention(self) -> str:
        unit = get_noise(self.noise).theta_unit
        if self.sigma_is_std:
            return f"{unit} = sqrt(3) * sigma (sigma = {self.sigma} given as the standard deviation)"
        return unit

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def result_dict(self) -> dict:
        """The fields that decide the weights (what a resume must match); a field of RECORDED_IF_USED only
        when it differs from its default or is a hyper-parameter of the method."""
        from .objectives import OBJECTIVES

        own = OBJECTIVES[self.method].params
        defaults = {f.name: f.default for f in fields(self)}
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in EXECUTION_ONLY + NOT_WEIGHTS
            and (k not in RECORDED_IF_USED or k in own or v != defaults[k])
        }

    def hyperparameters(self) -> dict:
        """The method's own hyper-parameters (recorded in the checkpoint sidecar)."""
        from .objectives import OBJECTIVES

        return {name: getattr(self, name) for name in OBJECTIVES[self.method].params}
