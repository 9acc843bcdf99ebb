"""anisocert: certify neural-network classifiers with randomized smoothing, isotropic and anisotropic.

The public API, one import per step of the pipeline: noise -> certify -> optimise -> memory -> metrics.
"""

from .core.ancer import AncerResult, ancer
from .core.memory import CertificateMemory, MemoryDecision
from .core.metrics import average_certified_radius, certified_accuracy
from .core.noise import Gaussian, NoiseFamily, Uniform, get_noise
from .core.optimise import OptimiseResult, optimise_sigma, optimise_theta
from .core.regions import Region
from .core.settings import Budget, SigmaSearch, ThetaSearch
from .core.smooth import ABSTAIN, CertifyResult, Smoothed
from .core.verify import VerifyReport, verify_regions
from .data import Dataset, load_data, select_indices
from .errors import AnisocertError
from .models import LoadedModel, create_model, list_models, load_model
from .run.config import CertifyConfig
from .run.runner import RunSummary, certify_dataset, verify_run

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN",
    "AncerResult",
    "Budget",
    "SigmaSearch",
    "ThetaSearch",
    "ancer",
    "AnisocertError",
    "CertificateMemory",
    "CertifyConfig",
    "CertifyResult",
    "Dataset",
    "Gaussian",
    "LoadedModel",
    "MemoryDecision",
    "NoiseFamily",
    "OptimiseResult",
    "Region",
    "RunSummary",
    "Smoothed",
    "Uniform",
    "VerifyReport",
    "average_certified_radius",
    "certified_accuracy",
    "certify_dataset",
    "create_model",
    "get_noise",
    "list_models",
    "load_data",
    "load_model",
    "optimise_sigma",
    "optimise_theta",
    "select_indices",
    "verify_regions",
    "verify_run",
    "__version__",
]
