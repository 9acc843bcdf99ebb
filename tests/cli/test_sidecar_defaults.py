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
