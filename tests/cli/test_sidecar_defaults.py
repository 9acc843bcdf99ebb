"""`certify` takes --noise and --sigma from the model's sidecar unless the user gives them."""

import json

import pytest
from typer.testing import CliRunner

from anisocert.cli import app
from anisocert.models import training_noise

FAST = ["--max", "1", "--n0", "10", "--n", "100", "--no-progress"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], ("uniform", 0.5)),  # both from the sidecar
        (["--sigma", "0.3"], ("uniform", 0.3)),  # the user's sigma, the trained noise
        (["--noise", "gaussian"], ("gaussian", 0.25)),  # another noise: the trained sigma does not apply
    ],
)
def test_noise_and_sigma_default_to_the_training_ones(tmp_path, extra, expected):
    result = CliRunner().invoke(
        app, ["certify", "--model", "builtin:digits-uniform", *FAST, *extra, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert (config["noise"], config["sigma"]) == expected


def test_training_noise_reads_only_sidecars():
    assert training_noise("builtin:digits-gaussian") == ("gaussian", 0.25)
    assert training_noise("builtin:nope") is None
    assert training_noise("some.module:factory") is None


def test_the_api_resolves_the_same_defaults_as_the_cli(tmp_path):
    """One place resolves the sidecar: the Python API certifies builtin:digits-uniform as the CLI does."""
    from anisocert import CertifyConfig, certify_dataset

    config = CertifyConfig.from_flat(model="builtin:digits-uniform", max_count=1, n0=10, n=100)
    assert (config.noise, config.sigma) == ("uniform", 0.5)
    certify_dataset(config, tmp_path / "api", progress=False)
    stored = json.loads((tmp_path / "api" / "run.json").read_text())["config"]
    assert (stored["noise"], stored["sigma"]) == ("uniform", 0.5)
    # what the user gives wins; a noise other than the trained one starts from the generic 0.25
    assert CertifyConfig.from_flat(model="builtin:digits-uniform", noise="gaussian").sigma == 0.25
    assert CertifyConfig.from_flat(model="builtin:digits-uniform", sigma=0.3).noise == "uniform"
