"""Sequential certification in runs (--radii): records depend only on (seed, idx), compose with resume, the
draws column counts what was spent, every method and fallback runs, and runs without --radii keep their hash."""

import json
import sqlite3

import numpy as np
import pytest

from anisocert.core.sequential import LookSchedule
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from tests.runs import stored_records, tsv_rows

BASE = dict(model="builtin:digits-gaussian", n0=100, n=3000, alpha=0.001, skip=7, max_count=8, seed=2)


def test_configs_without_radii_keep_the_hash_of_runs_made_before():
    # hashes of these configs computed by anisocert before --radii existed (commit 84c8d65)
    assert CertifyConfig.from_flat(model="builtin:digits-gaussian").result_hash() == "712219e7d586c141"
    # (with the ancer settings that were the defaults then: the DDRS gradient, the paper objective, both)
    old_defaults = dict(iso_method="gradient", ancer_objective="paper", fallback="both")
    ancer = CertifyConfig.from_flat(
        model="builtin:digits-gaussian", method="ancer", noise="uniform", sigma=0.5, n=5000, **old_defaults
    )
    assert ancer.result_hash() == "236552aca3a608ff"
    with_radii = CertifyConfig.from_flat(model="builtin:digits-gaussian", radii="1.0,0.5")
    assert with_radii.budget.radii == (0.5, 1.0) and with_radii.result_hash() != "712219e7d586c141"


def test_fixed_radii_runs_are_prefixes_of_the_fixed_n_stream_whatever_the_batching(tmp_path):
    grid = dict(radii=(0.25, 0.5, 0.75))
    certify_dataset(CertifyConfig.from_flat(**BASE, **grid), tmp_path / "a", progress=False)
    certify_dataset(CertifyConfig.from_flat(**BASE), tmp_path / "full", progress=False, command="")
    # another batching, and a resume of a run that lost its last five records
    other = CertifyConfig.from_flat(**dict(BASE, inputs_per_batch=3, batch_size=700), **grid)
    certify_dataset(other, tmp_path / "b", progress=False)
    db = sqlite3.connect(tmp_path / "b" / "run.sqlite")
    with db:
        db.execute("DELETE FROM records WHERE idx IN (SELECT idx FROM records ORDER BY idx DESC LIMIT 5)")
    db.close()
    certify_dataset(other, tmp_path / "b", progress=False)
    assert tsv_rows(tmp_path / "a") == tsv_rows(tmp_path / "b")
    seq, full = stored_records(tmp_path / "a"), stored_records(tmp_path / "full")
    looks = LookSchedule.geometric(BASE["n"], BASE["alpha"]).looks
    draws = [r.draws for r in seq.values()]
    assert all(d in looks and d == sum(r.counts) for d, r in zip(draws, seq.values()))
    assert min(draws) < BASE["n"]  # some inputs settle their grid place early
    for i, r in seq.items():
        if r.draws == BASE["n"]:  # drew everything: exactly the fixed-n run's draws
            assert r.counts == full[i].counts
    summary = json.loads((tmp_path / "a" / "run.json").read_text())
    assert summary["looks"]["looks"] == list(looks) and summary["mean_draws"] == np.mean(draws)
    assert "looks" not in json.loads((tmp_path / "full" / "run.json").read_text())


@pytest.mark.parametrize(
    "method,fallback,noise,radii_on",
    [
        ("isotropic", "both", "gaussian", "radius"),
        ("ancer", "both", "gaussian", "radius"),
        ("ancer", "select", "uniform", "proxy"),
        ("ancer", "off", "uniform", "radius"),
    ],
)
def test_every_method_and_fallback_certifies_sequentially(tmp_path, method, fallback, noise, radii_on):
    model, sigma, radii = {
        "gaussian": ("builtin:digits-gaussian", 0.25, (0.25, 0.5)),
        "uniform": ("builtin:digits-uniform", 0.5, (0.1, 0.2)),
    }[noise]
    config = CertifyConfig.from_flat(
        **dict(BASE, model=model, max_count=4),
        noise=noise,
        sigma=sigma,
        method=method,
        fallback=fallback,
        radii=radii,
        radii_on=radii_on,
        iso_method="votes",
        iso_samples=32,
        ancer_iterations=5,
        ancer_samples=16,
    )
    certify_dataset(config, tmp_path / "run", progress=False)
    records = list(stored_records(tmp_path / "run").values())
    assert len(records) == 4
    spent = np.array([r.draws for r in records])
    behind = np.array([sum(r.counts) for r in records])
    if method == "ancer" and fallback == "both":  # both certificates' draws, each sequential at alpha/2
        assert np.all(spent > behind) and config.schedule.alpha == config.budget.alpha / 2
    else:
        assert np.array_equal(spent, behind)
    assert np.all(spent <= (2 if fallback == "both" and method == "ancer" else 1) * BASE["n"])
    header = (tmp_path / "run" / "certify.tsv").read_text().splitlines()[0].split("\t")
    assert header[-1] == "draws"
