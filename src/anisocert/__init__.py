"""anisocert: certify neural-network classifiers with randomized smoothing, isotropic and anisotropic."""

__version__ = "0.1.0"
