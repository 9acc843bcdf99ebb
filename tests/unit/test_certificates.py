"""Certificates, the one certificate type: radii in one place, batch operations, and the same values
through the store, memory and verify as the per-input calls give."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from anisocert.core import certificates
from anisocert.core.certificates import ABSTAIN, Certificates
from anisocert.core.memory import CertificateMemory
from anisocert.core.noise import get_noise
from anisocert.core.verify import verify_certificates, verify_regions


def _batch(B: int = 6, dim: int = 5, seed: int = 0) -> tuple[Certificates, np.ndarray]:
    """Certificates of B inputs in dim dimensions with random regions (some abstaining, some isotropic)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.2, 0.6, (B, dim)).astype(np.float32)
    lower = rng.uniform(0.4, 0.999, B)
    gap = np.where(lower >= 0.5, get_noise("gaussian").gap(np.maximum(lower, 0.5)), 0.0)
    flat = theta.astype(np.float64)
    certs = Certificates.from_gap(
        np.where(lower >= 0.5, rng.integers(0, 3, B), ABSTAIN),
        lower,
        gap,
        flat.min(axis=1),
        np.exp(np.log(flat).mean(axis=1)),
        rng.integers(0, 50, (B, 3)),
    )
    fallback = np.arange(B) % 3 == 0
    certs = certs.with_noise(rng.uniform(0.2, 0.3, B), theta, fallback).replace(
        idx=np.arange(B) * 7, label=rng.integers(0, 3, B), time=np.ones(B), opt_time=np.zeros(B)
    )
    centers = rng.normal(0, 0.3, (B, dim))
    return certs, centers


def test_from_gap_computes_both_radii_by_the_one_formula_at_full_precision():
    certs, _ = _batch()
    np.testing.assert_array_equal(certs.radius, certificates.radius(certs.min_theta, certs.gap))
    np.testing.assert_array_equal(certs.proxy_radius, certs.geo_mean_theta * certs.gap)
    assert certs.radius.dtype == np.float64 and np.all(certs.radius[certs.prediction == ABSTAIN] == 0)
    np.testing.assert_array_equal(certs.draws, certs.counts.sum(axis=1))


def test_rows_take_where_and_combine_keep_every_field():
    certs, _ = _batch()
    again = Certificates.from_rows(certs.rows())
    for name in (
        "prediction",
        "pA_lower",
        "gap",
        "radius",
        "proxy_radius",
        "counts",
        "idx",
        "sigma",
        "fallback",
    ):
        np.testing.assert_array_equal(getattr(again, name), getattr(certs, name))
    assert all((a is None) == (b is None) for a, b in zip(again.theta, certs.theta))
    odd, even = certs.take([1, 3, 5]), certs.take([0, 2, 4])
    joined = Certificates.combine(6, [([1, 3, 5], odd), ([0, 2, 4], even)])
    np.testing.assert_array_equal(joined.radius, certs.radius)
    assert [t is None for t in joined.theta] == [t is None for t in certs.theta]
    other = certs.replace(radius=certs.radius + 1)
    mask = np.array([True, False] * 3)
    mixed = certs.where(mask, other)
    np.testing.assert_array_equal(mixed.radius, np.where(mask, certs.radius, certs.radius + 1))
    assert certs.row(2).correct == int(certs.prediction[2] == certs.label[2])


def test_with_noise_reports_sigma_where_the_isotropic_certificate_was_kept():
    certs, _ = _batch(B=4, dim=3)
    rows = certs.theta_rows(3)
    for k in range(4):
        if certs.fallback[k]:
            assert certs.theta[k] is None and np.all(rows[k] == certs.sigma[k])
        else:
            np.testing.assert_array_equal(rows[k], certs.theta[k].astype(np.float64))


def test_memory_certify_all_decides_as_the_per_input_calls():
    certs, centers = _batch(B=12, dim=4, seed=3)
    batch = CertificateMemory("l2", 4).certify_all(centers, certs)
    one = CertificateMemory("l2", 4)
    for k in range(len(certs)):
        theta = certs.theta_rows(4)[k]
        decision = one.certify(centers[k], theta, certs.gap[k], certs.prediction[k])
        assert (batch.prediction[k], batch.status[k]) == (decision.prediction, decision.status)
        gap = decision.gap if decision.prediction != ABSTAIN else 0.0
        assert batch.gap[k] == gap and batch.radius[k] == theta.min() * gap
        assert batch.proxy_radius[k] == certificates.geometric_mean(theta) * gap
    assert set(batch.status) <= set(certificates.MEMORY_STATUSES)


def test_verify_certificates_checks_the_regions_verify_regions_checks():
    certs, centers = _batch(B=10, dim=3, seed=5)
    report = verify_certificates(certs, centers, "l2")
    direct = verify_regions(centers, certs.theta_rows(3), certs.gap, certs.prediction, "l2")
    assert report.conflicts == direct.conflicts and report.pairs_checked == direct.pairs_checked
    reported = CertificateMemory("l2", 3).certify_all(centers, certs)
    assert verify_certificates(reported, centers, "l2").ok  # memory's certificates never overlap


def test_the_store_gives_back_the_certificates_it_was_given(tmp_path):
    from anisocert.run.config import CertifyConfig
    from anisocert.run.store import RunStore

    certs, _ = _batch(B=5, dim=64)
    config = CertifyConfig.from_flat(model="builtin:digits-gaussian", method="ancer", n=100)
    store = RunStore.open(tmp_path / "run", config, versions={"anisocert": "0.1.0"})
    store.add_certificates(certs)
    back = store.certificates()
    order = np.argsort(certs.idx)
    for name in ("idx", "label", "prediction", "pA_lower", "gap", "radius", "proxy_radius", "min_theta"):
        np.testing.assert_array_equal(getattr(back, name), getattr(certs, name)[order], err_msg=name)
    for k, j in enumerate(order):
        if certs.theta[j] is None:
            assert back.theta is None or back.theta[k] is None
        else:
            np.testing.assert_array_equal(back.theta[k], certs.theta[j])
    light = store.certificates(theta=False)  # what the tables need, without the regions' theta
    assert light.theta is None and np.array_equal(light.proxy_radius, back.proxy_radius)
    with pytest.raises(sqlite3.IntegrityError):  # an input is certified once: a second insert is refused
        store.add_certificates(certs.take([0]))
    store.close()


def test_a_resumed_run_batches_stored_rows_beside_fresh_ones(tmp_path):
    """Stored rows lack what the store does not keep (selection counts, geo mean): a batch of both leaves
    those columns out and keeps every other."""
    from anisocert.run.config import CertifyConfig
    from anisocert.run.store import RunStore

    certs, _ = _batch(B=4, dim=64)
    config = CertifyConfig.from_flat(model="builtin:digits-gaussian", method="ancer", n=100)
    store = RunStore.open(tmp_path / "run", config, versions={"anisocert": "0.1.0"})
    store.add_certificates(certs.take([0, 1]))
    stored = store.certificates().rows()
    store.close()
    mixed = Certificates.from_rows(stored + certs.take([2, 3]).rows())
    assert mixed.geo_mean_theta is None and mixed.status is None
    np.testing.assert_array_equal(mixed.gap, certs.gap[np.argsort(certs.idx[:2]).tolist() + [2, 3]])
    assert len(CertificateMemory("l2", 64).certify_all(np.zeros((4, 64)), mixed)) == 4


def test_the_report_takes_certificates_and_their_tsv_reads_back_to_the_last_digit(tmp_path):
    from anisocert.viz.results import Results, read_tsv, write_tsv

    certs, centers = _batch(B=8, dim=4, seed=7)
    reported = CertificateMemory("l2", 4).certify_all(centers, certs)
    results = Results.from_certificates("run", reported, "ancer")
    np.testing.assert_array_equal(results.radius, reported.radius)
    np.testing.assert_array_equal(results.correct, (reported.prediction == reported.label).astype(int))
    raw = Results.from_certificates("raw", certs, "ancer")  # before memory: no status yet
    assert list(raw.columns["memory_status"]) == ["none"] * len(certs)
    back = read_tsv(write_tsv(results, tmp_path / "run.tsv"))
    for name, column in results.columns.items():
        np.testing.assert_array_equal(back.columns[name], column, err_msg=name)
