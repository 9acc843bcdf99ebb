"""Bad input: a one-line error naming the problem, exit code 2, and nothing written to an existing run."""

import hashlib
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from anisocert.cli import app

runner = CliRunner()
FAST = ["--n0", "20", "--n", "100", "--max", "3", "--no-progress", "--batch-size", "500"]


def _digest(run_dir):
    """Hashes of the run's files and of its stored rows (SQLite's -wal/-shm scratch files excluded)."""
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.iterdir())
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        files["rows"] = hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()
    return files


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    result = runner.invoke(app, ["certify", "--out", str(run), *FAST])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    np.savez(root / "nan.npz", x=np.full((2, 1, 8, 8), np.nan, dtype=np.float32), y=np.array([0, 1]))
    np.savez(root / "shape.npz", x=np.zeros((2, 3, 5, 5), dtype=np.float32), y=np.array([0, 1]))
    (root / "corrupt.safetensors").write_bytes(b"not a safetensors file at all")
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 broken")
    grid = np.random.default_rng(0).integers(0, 17, size=(3, 1, 8, 8)) / 16.0
    grid[1, 0, 2, 2] += 1e-3  # input 1 is off the grid k / 16
    np.savez(root / "offgrid.npz", x=grid.astype(np.float32), y=np.array([0, 1, 2]), num_classes=10)
    return root


CASES = {
    "missing model": (["--model", "{root}/nope.safetensors"], "nope"),
    "corrupt model": (["--model", "digits_cnn:{root}/corrupt.safetensors"], "corrupt"),
    "missing data": (["--data", "npz:{root}/missing.npz"], "missing.npz"),
    "corrupt data": (["--data", "npz:{root}/corrupt.npz"], "corrupt.npz"),
    "wrong shape": (["--data", "npz:{root}/shape.npz"], "shape"),
    "nan inputs": (["--data", "npz:{root}/nan.npz"], "NaN"),
    "sigma zero": (["--sigma", "0"], "sigma"),
    "sigma negative": (["--sigma", "-0.5"], "sigma"),
    "alpha above one": (["--alpha", "1.5"], "alpha"),
    "alpha zero": (["--alpha", "0"], "alpha"),
    "n0 zero": (["--n0", "0"], "n0"),
    "n zero": (["--n", "0"], "n=0"),
    "n infeasible": (["--n", "5"], "use n >= 10"),
    "batch size zero": (["--batch-size", "0"], "batch"),
    "unknown noise": (["--noise", "laplace"], "laplace"),
    "unknown method": (["--method", "magic"], "magic"),
    "off the grid": (
        ["--data", "npz:{root}/offgrid.npz", "--levels", "16"],
        "input 1 is not on the grid k/16",
    ),
    "exact without a grid": (["--data", "npz:{root}/offgrid.npz", "--sampler", "exact"], "--levels L"),
    "unknown sampler": (["--sampler", "exactly"], "exactly"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_the_run_alone(case, existing_run, files):
    args, needle = CASES[case]
    args = [a.format(root=files) for a in args]
    before = _digest(existing_run)
    result = runner.invoke(app, ["certify", "--out", str(existing_run), *FAST, *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert _digest(existing_run) == before


def test_other_configuration_on_an_existing_run_is_refused(existing_run):
    before = _digest(existing_run)
    result = runner.invoke(app, ["certify", "--out", str(existing_run), *FAST, "--sigma", "0.5"])
    assert result.exit_code == 2
    assert "another configuration" in result.output and "sigma" in result.output
    assert _digest(existing_run) == before


def test_rerun_of_a_finished_run_changes_no_record(existing_run):
    tsv = (existing_run / "certify.tsv").read_text()
    result = runner.invoke(app, ["certify", "--out", str(existing_run), *FAST])
    assert result.exit_code == 0, result.output
    assert (existing_run / "certify.tsv").read_text() == tsv
