"""Model architectures (timm-style registry) and `load_model` for saved programs, factories and checkpoints.

Importing this package registers every architecture: ``list_models()`` names them.
"""

from . import imagenet, lenet, resnet_cifar, wide_resnet  # noqa: F401  (registration)
from ._loading import LoadedModel, load_model, training_noise
from ._registry import create_model, is_model, list_models, model_entrypoint, register_model

__all__ = [
    "create_model",
    "list_models",
    "is_model",
    "model_entrypoint",
    "register_model",
    "load_model",
    "LoadedModel",
    "training_noise",
]
