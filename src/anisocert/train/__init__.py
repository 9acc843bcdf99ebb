"""Training base classifiers under noise: objectives (gaussian, uniform, smoothadv, macer, stability,
anisotropic) and one resumable loop.

theta is the standard deviation for gaussian noise and the half-width for uniform noise, as in the rest of
anisocert; ``TrainConfig.sigma_is_std`` reads a uniform sigma as the standard deviation instead (half-width
sqrt(3) * sigma). Noise is added in [0, 1] input space (normalisation is inside the model). Sources of
every default and preset value: docs/training.md.
"""

from ._config import SCHEDULES, TrainConfig
from ._evaluate import heldout_accuracy, noisy_accuracy
from ._loop import amp_dtype, reproduce_command, resolve_device, sidecar_meta, train_model
from .objectives import OBJECTIVES, Objective, Step

__all__ = [
    "TrainConfig",
    "train_model",
    "OBJECTIVES",
    "Objective",
    "Step",
    "SCHEDULES",
    "noisy_accuracy",
    "heldout_accuracy",
    "reproduce_command",
    "resolve_device",
    "amp_dtype",
    "sidecar_meta",
]
