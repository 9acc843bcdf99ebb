"""ancer's three ways to stay a superset of the isotropic certificate (--fallback both | select | off).

select certifies one noise per input, at alpha: the isotropic one where the n0 selection draws forecast
a larger radius for it, else theta_x. Its records must therefore be, input by input, exactly the
isotropic run's record (same draws, same alpha) or the `off` run's anisotropic record, chosen by the
forecast computed from the selection draws alone.
"""

import numpy as np
import pytest
import torch

from anisocert.core.noise import get_noise
from anisocert.core.smooth import Smoothed, predicted_radius
from anisocert.data import load_data
from anisocert.models import load_model
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from anisocert.run.store import RunStore
from tests.runs import stored_records

BUDGET = dict(
    model="builtin:digits-gaussian",
    data="digits",
    noise="gaussian",
    sigma=0.25,
    n0=200,
    n=2000,
    alpha=0.001,
    skip=45,
    seed=3,
    iso_method="votes",
    iso_samples=64,
    ancer_iterations=20,
    ancer_samples=32,
    inputs_per_batch=4,
)
FIELDS = ("prediction", "radius", "proxy_radius", "gap", "pA_lower", "counts")


def _same(a, b) -> bool:
    return all(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f))) for f in FIELDS)


@pytest.mark.slow
def test_select_reports_the_forecast_larger_of_the_isotropic_and_anisotropic_records(tmp_path):
    runs = {}
    for name, method, fallback in [
        ("iso", "isotropic", "both"),
        ("off", "ancer", "off"),
        ("sel", "ancer", "select"),
    ]:
        config = CertifyConfig.from_flat(method=method, fallback=fallback, **BUDGET)
        assert config.effective_alpha == BUDGET["alpha"]  # one certificate per input: no union bound
        certify_dataset(config, tmp_path / name, progress=False)
        runs[name] = stored_records(tmp_path / name)
    iso, off, sel = runs["iso"], runs["off"], runs["sel"]
    assert sorted(sel) == sorted(iso) == sorted(off) and len(sel) == 12

    # the forecast, recomputed from the selection draws only (the streams of (seed, idx))
    idx = sorted(sel)
    x = load_data("digits").get(np.asarray(idx))
    # the runs' sampler: exact on the digits grid (issue 22), with sigma_x and theta_x as certified (menu)
    store = RunStore.read(tmp_path / "sel")
    sampler = store.config.exact_sampler()
    store.close()
    assert sampler is not None
    smoothed = Smoothed(
        load_model("builtin:digits-gaussian").module, "gaussian", device="cpu", sampler=sampler
    )
    sigma = torch.tensor([off[i].sigma for i in idx], dtype=torch.float32)
    theta = torch.tensor(np.stack([off[i].theta for i in idx])).reshape(x.shape)
    common = dict(n0=BUDGET["n0"], seed=BUDGET["seed"], idx=idx)
    n, alpha, gauss = BUDGET["n"], BUDGET["alpha"], get_noise("gaussian")
    iso_forecast = predicted_radius(
        gauss, smoothed.selection_counts(x, sigma, **common), n, alpha, sigma.numpy()
    )
    min_theta = theta.reshape(len(idx), -1).min(dim=1).values.double().numpy()
    aniso_forecast = predicted_radius(
        gauss, smoothed.selection_counts(x, theta, **common), n, alpha, min_theta
    )

    chose_iso = 0
    for k, i in enumerate(idx):
        expect_iso = aniso_forecast[k] < iso_forecast[k] or aniso_forecast[k] == 0
        assert sel[i].fallback == int(expect_iso)
        if expect_iso:
            chose_iso += 1
            assert sel[i].theta is None and _same(sel[i], iso[i]), i
        else:
            np.testing.assert_array_equal(sel[i].theta, off[i].theta)
            assert _same(sel[i], off[i]), i
    assert 0 < chose_iso < len(idx)  # both choices occur on these inputs


@pytest.mark.slow
def test_select_takes_the_isotropic_records_of_a_reused_run(tmp_path):
    certify_dataset(CertifyConfig.from_flat(method="isotropic", **BUDGET), tmp_path / "iso", progress=False)
    plain = CertifyConfig.from_flat(method="ancer", fallback="select", **BUDGET)
    certify_dataset(plain, tmp_path / "plain", progress=False)
    reused = CertifyConfig.from_flat(method="ancer", fallback="select", reuse=str(tmp_path / "iso"), **BUDGET)
    certify_dataset(reused, tmp_path / "reused", progress=False)
    a, b = stored_records(tmp_path / "plain"), stored_records(tmp_path / "reused")
    assert sorted(a) == sorted(b)
    for i in a:
        assert a[i].fallback == b[i].fallback and _same(a[i], b[i]), i


def test_fallback_modes_are_named_and_old_configs_read():
    assert (
        CertifyConfig.from_flat(model="m", fallback=True).fallback == "both"
    )  # run.json of earlier versions
    assert CertifyConfig.from_flat(model="m", fallback=False).fallback == "off"
    assert CertifyConfig.from_flat(model="m", method="ancer", fallback="both").effective_alpha == 0.0005
    assert CertifyConfig.from_flat(model="m", method="ancer").effective_alpha == 0.001  # the default: select
    with pytest.raises(Exception, match="fallback='maybe' is unknown; choose one of"):
        CertifyConfig.from_flat(model="m", fallback="maybe")


def test_the_plan_counts_the_draws_of_each_mode():
    from anisocert.experiment._estimate import _certify_passes

    base = dict(model="m", method="ancer", n0=100, n=10_000, iso_method="votes")
    forward = {
        f: _certify_passes(CertifyConfig.from_flat(fallback=f, **base))[0] for f in ("both", "select", "off")
    }
    assert forward["both"] - forward["off"] == 100 + 10_000  # a second certificate
    assert forward["select"] - forward["off"] == 100  # the selection draws at sigma_x only


def test_the_cli_runs_and_records_the_mode(tmp_path):
    import json

    from typer.testing import CliRunner

    from anisocert.cli import app

    args = ["certify", "--model", "builtin:digits-gaussian", "--method", "ancer", "--fallback", "select"]
    args += ["--max", "2", "--n0", "20", "--n", "200", "--iso-method", "votes", "--iso-samples", "16"]
    args += ["--ancer-iterations", "2", "--ancer-samples", "8", "--no-progress", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["config"]["fallback"] == "select" and meta["certificate_alpha"] == 0.001
    assert meta["config"]["ancer_objective"] == "certified"  # the run records the objective it used
