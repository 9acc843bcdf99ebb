"""The ancer objective setting: recorded in the run's hash only where it decides the records, so that runs
stored before it existed (the public objective) resume and --reuse as before; bad values refused."""

import pytest

from anisocert.errors import AnisocertError
from anisocert.run.config import CertifyConfig

# A run's config as stored before the certified objective existed, and its hash then (computed by the
# previous release of run/config.py).
OLD = {
    "model": "builtin:digits-gaussian", "data": "digits", "split": "test", "noise": "gaussian",
    "method": "ancer", "sigma": 0.25, "n0": 100, "n": 2000, "alpha": 0.001, "seed": 0, "skip": 27,
    "max_count": None, "indices": None, "iso_method": "votes", "iso_iterations": 900, "iso_lr": 0.04,
    "iso_samples": 100, "iso_sigma_min": None, "iso_sigma_max": None, "iso_grid_points": 8,
    "iso_refine_steps": 6, "ancer_iterations": 100, "ancer_lr": 0.04, "ancer_samples": 100,
    "ancer_tol": None, "ancer_patience": 10, "kappa": 2.0, "fallback": "both", "memory": True,
    "early_stop": True, "on_inside": "abstain", "outputs": "logits", "channels_last": False, "bf16": False,
    "compile": False, "batch_size": 1000, "inputs_per_batch": 8, "device": None, "label": None,
    "workers": 1, "ray_address": None, "reuse": None, "model_sha256": "",
}  # fmt: skip
OLD_HASH = "02930fc330933e31"
OLD_ISOTROPIC_HASH = "0266bd019e4f0b03"


def test_a_run_stored_before_the_objective_existed_keeps_its_hash_and_the_public_objective():
    config = CertifyConfig.from_dict(OLD)
    assert config.theta_search.objective == "paper"
    assert config.result_hash() == OLD_HASH
    assert CertifyConfig.from_dict({**OLD, "method": "isotropic"}).result_hash() == OLD_ISOTROPIC_HASH


def test_the_certified_objective_and_its_checks_are_part_of_the_hash():
    fields = {k: v for k, v in OLD.items() if k not in ("model_sha256",)}
    certified = CertifyConfig.from_flat(**{**fields, "ancer_objective": "certified"})
    assert certified.result_hash() != OLD_HASH
    assert certified.result_dict()["ancer_objective"] == "certified"
    other = CertifyConfig.from_flat(**{**fields, "ancer_objective": "certified", "ancer_check_samples": 300})
    assert other.result_hash() != certified.result_hash()
    # an isotropic run's records do not depend on ancer's objective
    iso = CertifyConfig.from_flat(**{**fields, "method": "isotropic", "ancer_objective": "certified"})
    assert iso.result_hash() == OLD_ISOTROPIC_HASH


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("ancer_objective", "volume", "ancer_objective"), ("ancer_check_margin", -1.0, "ancer_check_margin")],
)
def test_bad_values_are_refused_in_one_line(field, value, words):
    with pytest.raises(AnisocertError) as err:
        CertifyConfig.from_flat(**{**OLD, field: value})
    assert words in str(err.value) and "\n" not in str(err.value)
