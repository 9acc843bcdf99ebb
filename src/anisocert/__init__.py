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
    "keep_freed_memory": "_allocator",
    "AncerResult": "core.ancer",
    "ancer": "core.ancer",
    "CertificateMemory": "core.memory",
    "MemoryDecision": "core.memory",
    "average_certified_radius": "core.metrics",
    "certified_accuracy": "core.metrics",
    "Gaussian": "core.noise",
    "NoiseFamily": "core.noise",
    "Uniform": "core.noise",
    "get_noise": "core.noise",
    "OptimiseResult": "core.optimise",
    "optimise_sigma": "core.optimise",
    "optimise_theta": "core.optimise",
    "Region": "core.regions",
    "LookSchedule": "core.sequential",
    "Budget": "core.settings",
    "SigmaSearch": "core.settings",
    "ThetaSearch": "core.settings",
    "ABSTAIN": "core.smooth",
    "Certificate": "core.certificates",
    "Certificates": "core.certificates",
    "Smoothed": "core.smooth",
    "ExactSampler": "core.exact",
    "VerifyReport": "core.verify",
    "verify_regions": "core.verify",
    "Dataset": "data",
    "load_data": "data",
    "select_indices": "data",
    "AnisocertError": "errors",
    "LoadedModel": "models",
    "create_model": "models",
    "list_models": "models",
    "load_model": "models",
    "CertifyConfig": "run.config",
    "Execution": "run.config",
    "RunSummary": "run.runner",
    "certify_dataset": "run.runner",
    "verify_run": "run.runner",
    "Results": "viz.results",
    "load_results": "viz.results",
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
