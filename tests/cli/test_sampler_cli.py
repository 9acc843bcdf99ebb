"""`certify --sampler / --levels / --round` through the CLI: the default on digits is the exact sampler, run.json
records it, and --round certifies exactly what certifying the rounded inputs gives."""

import json

import numpy as np
from typer.testing import CliRunner

from anisocert.cli import app

runner = CliRunner()
FAST = ["--n0", "20", "--n", "200", "--no-progress", "--batch-size", "500"]


def _records(run):
    """certify.tsv without the wall-clock columns."""
    lines = [line.split("\t") for line in (run / "certify.tsv").read_text().splitlines()]
    keep = [k for k, c in enumerate(lines[0]) if c not in ("time", "opt_time")]
    return [[row[k] for k in keep] for row in lines]


def test_digits_default_to_the_exact_sampler_and_float_is_an_option(tmp_path):
    for sampler, args in (("exact", []), ("float", ["--sampler", "float"])):
        result = runner.invoke(app, ["certify", "--max", "2", *FAST, *args, "--out", str(tmp_path / sampler)])
        assert result.exit_code == 0, result.output
        summary = json.loads((tmp_path / sampler / "run.json").read_text())
        assert summary["config"]["sampler"] == sampler
        assert summary["config"]["levels"] == (16 if sampler == "exact" else None)
        assert ("exact_sampler" in summary) == (sampler == "exact")


def test_round_certifies_the_rounded_inputs(tmp_path):
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 17, size=(3, 1, 8, 8)) / 16.0
    off = grid + rng.uniform(-0.02, 0.02, size=grid.shape)  # within half a grid step: rounds back to grid
    np.savez(tmp_path / "grid.npz", x=grid.astype(np.float32), y=np.array([0, 1, 2]), num_classes=10)
    np.savez(tmp_path / "off.npz", x=off.astype(np.float32), y=np.array([0, 1, 2]), num_classes=10)
    common = ["certify", *FAST, "--levels", "16", "--method", "isotropic", "--iso-samples", "20"]
    refused = runner.invoke(
        app, [*common, "--data", f"npz:{tmp_path}/off.npz", "--out", str(tmp_path / "r0")]
    )
    assert refused.exit_code == 2 and "input 0 is not on the grid k/16" in refused.output
    runs = {}
    for name, extra in (("grid", []), ("off", ["--round"])):
        out = tmp_path / name
        result = runner.invoke(
            app, [*common, *extra, "--data", f"npz:{tmp_path}/{name}.npz", "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        runs[name] = _records(out)
    assert runs["grid"] == runs["off"]
    assert json.loads((tmp_path / "off" / "run.json").read_text())["config"]["round_inputs"] is True
    verify = runner.invoke(app, ["verify", str(tmp_path / "off")])
    assert verify.exit_code == 0, verify.output
