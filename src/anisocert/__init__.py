"""anisocert: certify neural-network classifiers with randomized smoothing, isotropic and anisotropic.

The public API, one import per step of the pipeline: noise -> certify -> optimise -> memory -> metrics.

The names are imported on first use (PEP 562): ``import anisocert`` and the command line (which
imports this package first) stay free of torch, so ``anisocert --help`` answers at once; commands
import torch only when they run.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module (relative to this package) that defines it
_LAZY = {
    "RunSummary": "api",
    "certify_dataset": "api",
    "verify_run": "api",
    "CertifyConfig": "config",
    "Dataset": "data",
    "load_data": "data",
    "select_indices": "data",
    "AnisocertError": "errors",
    "CertificateMemory": "memory",
    "MemoryDecision": "memory",
    "average_certified_radius": "metrics",
    "certified_accuracy": "metrics",
    "LoadedModel": "models",
    "create_model": "models",
    "list_models": "models",
    "load_model": "models",
    "Gaussian": "noise",
    "NoiseFamily": "noise",
    "Uniform": "noise",
    "get_noise": "noise",
    "OptimiseResult": "optimise",
    "optimise_sigma": "optimise",
    "optimise_theta": "optimise",
    "Region": "regions",
    "ABSTAIN": "smooth",
    "CertifyResult": "smooth",
    "Smoothed": "smooth",
    "VerifyReport": "verify",
    "verify_regions": "verify",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """Import the module defining a public name on first access, and keep the name here."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
