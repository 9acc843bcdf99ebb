"""--reuse RUN_DIR takes another run's optimisation (and an isotropic run's counts) instead of redoing it;
`anisocert optimize` stores the optimisation alone, and certify then completes the same run directory.

The records must be exactly those of a run that does all the work itself (wall-time columns aside),
and a run made with other settings must be refused in one line naming the differing fields.
"""

import pytest

from anisocert.errors import InputError
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from tests.runs import tsv_rows

BUDGET = dict(
    model="builtin:digits-gaussian",
    data="digits",
    noise="gaussian",
    sigma=0.25,
    n0=20,
    n=500,
    alpha=0.001,
    skip=60,
    seed=4,
    iso_method="votes",
    iso_samples=64,
    ancer_iterations=5,
    ancer_samples=16,
    inputs_per_batch=4,
)


@pytest.mark.slow
def test_reused_runs_give_the_records_of_a_plain_run(tmp_path):
    iso = CertifyConfig.from_flat(method="isotropic", **BUDGET)
    ancer = CertifyConfig.from_flat(method="ancer", **BUDGET)
    certify_dataset(iso, tmp_path / "iso", progress=False)
    certify_dataset(ancer, tmp_path / "ancer", progress=False)
    from_iso = CertifyConfig.from_flat(method="ancer", reuse=str(tmp_path / "iso"), **BUDGET)
    from_ancer = CertifyConfig.from_flat(method="ancer", reuse=str(tmp_path / "ancer"), **BUDGET)
    iso_again = CertifyConfig.from_flat(method="isotropic", reuse=str(tmp_path / "ancer"), **BUDGET)
    certify_dataset(ancer, tmp_path / "optimised", progress=False, optimise_only=True)  # `optimize`
    assert not (tmp_path / "optimised" / "certify.tsv").read_text().splitlines()[1:]
    certify_dataset(ancer, tmp_path / "optimised", progress=False)  # then certify into the same run
    certify_dataset(from_iso, tmp_path / "from_iso", progress=False)
    certify_dataset(from_ancer, tmp_path / "from_ancer", progress=False)
    certify_dataset(iso_again, tmp_path / "iso_again", progress=False)
    plain = tsv_rows(tmp_path / "ancer")
    assert len(plain) == 1 + 9  # the 540 digits test images, every 60th
    assert tsv_rows(tmp_path / "optimised") == plain
    assert tsv_rows(tmp_path / "from_iso") == plain
    assert tsv_rows(tmp_path / "from_ancer") == plain
    assert tsv_rows(tmp_path / "iso_again") == tsv_rows(tmp_path / "iso")


@pytest.mark.slow
def test_a_run_with_other_settings_is_refused(tmp_path):
    certify_dataset(
        CertifyConfig.from_flat(method="isotropic", **dict(BUDGET, skip=400)),
        tmp_path / "iso",
        progress=False,
    )
    other_sigma = CertifyConfig.from_flat(
        method="ancer", reuse=str(tmp_path / "iso"), **dict(BUDGET, skip=400, sigma=0.5)
    )
    with pytest.raises(InputError, match=r"sigma \(0\.25 there, 0\.5 here\)"):
        certify_dataset(other_sigma, tmp_path / "bad", progress=False)
    fixed = CertifyConfig.from_flat(method="fixed", reuse=str(tmp_path / "iso"), **dict(BUDGET, skip=400))
    with pytest.raises(InputError, match="use it with --method isotropic or ancer"):
        certify_dataset(fixed, tmp_path / "bad2", progress=False)
