"""--reuse RUN_DIR takes another run's optimisation (and an isotropic run's counts) instead of redoing it,
and the certificates of the same run on another selection of inputs; `anisocert optimize` stores the
optimisation alone, and certify then completes the same run directory.

The records must be exactly those of a run that does all the work itself (wall-time columns aside),
and a run made with other settings must be refused in one line naming the differing fields.
"""

import pytest

from anisocert.errors import InputError
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from anisocert.run.worker import ChunkWorker
from tests.runs import stored_records, tsv_rows

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


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fixed", "ancer"])
def test_the_same_run_on_another_selection_gives_its_certificates(tmp_path, monkeypatch, method):
    """Every 120th input, then every 60th reusing it: the shared inputs are copied, not drawn again, and the
    records (raw and after memory) are those of a plain every-60th run."""
    config = CertifyConfig.from_flat(method=method, **BUDGET)
    certify_dataset(config, tmp_path / "plain", progress=False)
    certify_dataset(
        CertifyConfig.from_flat(method=method, **dict(BUDGET, skip=120)), tmp_path / "half", progress=False
    )
    drawn = []
    draw = ChunkWorker.run
    monkeypatch.setattr(
        ChunkWorker, "run", lambda self, chunk, *a: (drawn.extend(chunk), draw(self, chunk, *a))[1]
    )
    grown_run = certify_dataset(
        CertifyConfig.from_flat(method=method, reuse=str(tmp_path / "half"), **BUDGET),
        tmp_path / "grown",
        progress=False,
    )
    assert f"9 inputs certified (5 copied from {tmp_path / 'half'}, " in grown_run.text()
    assert sorted(drawn) == [60, 180, 300, 420]  # 0, 120, 240, 360, 480 came from the every-120th run
    assert tsv_rows(tmp_path / "grown") == tsv_rows(tmp_path / "plain")
    assert tsv_rows(tmp_path / "grown", "certify_nomemory.tsv") == tsv_rows(
        tmp_path / "plain", "certify_nomemory.tsv"
    )
    grown, half = stored_records(tmp_path / "grown"), stored_records(tmp_path / "half")
    assert all(grown[i].time == half[i].time for i in half)  # copied as they were, wall time included


@pytest.mark.slow
def test_an_ancer_run_of_another_fallback_gives_theta_but_not_its_counts(tmp_path):
    """An ancer run with fallback off is not the same run as one with both: its theta is taken, but its
    (anisotropic) counts must not stand in for the isotropic certificate's draws."""
    both = dict(BUDGET, fallback="both")
    certify_dataset(CertifyConfig.from_flat(method="ancer", **both), tmp_path / "plain", progress=False)
    certify_dataset(
        CertifyConfig.from_flat(method="ancer", **dict(BUDGET, fallback="off")),
        tmp_path / "off",
        progress=False,
    )
    reused = CertifyConfig.from_flat(method="ancer", reuse=str(tmp_path / "off"), **both)
    certify_dataset(reused, tmp_path / "from_off", progress=False)
    assert tsv_rows(tmp_path / "from_off") == tsv_rows(tmp_path / "plain")


@pytest.mark.slow
def test_the_same_run_with_another_seed_is_not_taken_whole(tmp_path):
    """A fixed run of other settings gives nothing: refused in one line, as before."""
    certify_dataset(
        CertifyConfig.from_flat(method="fixed", **dict(BUDGET, skip=400)), tmp_path / "a", progress=False
    )
    other_seed = CertifyConfig.from_flat(
        method="fixed", reuse=str(tmp_path / "a"), **dict(BUDGET, skip=200, seed=5)
    )
    with pytest.raises(InputError, match="same run on another selection"):
        certify_dataset(other_seed, tmp_path / "b", progress=False)
