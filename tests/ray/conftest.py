"""Ray tests: one small ANCER run with memory, compared with an uninterrupted 1-worker run.

All Ray tests share one reference run (in this process, no Ray) and, in process, one Ray cluster
of 2 CPUs; the driver-kill test runs the CLI in subprocesses that start their own clusters.
"""

import sqlite3

import pytest
from typer.testing import CliRunner

from tests.runs import tsv_rows

# A tiny budget on the builtin digits model: 12 inputs in 6 chunks, ANCER with memory on.
ARGS = [
    "certify",
    "--model",
    "builtin:digits-gaussian",
    "--data",
    "digits",
    "--method",
    "ancer",
    "--n0",
    "20",
    "--n",
    "200",
    "--max",
    "12",
    "--iso-method",
    "search",
    "--iso-samples",
    "16",
    "--ancer-iterations",
    "3",
    "--ancer-samples",
    "16",
    "--inputs-per-batch",
    "2",
    "--seed",
    "5",
    "--no-progress",
]
INPUTS = 12


def cli(*args: str) -> None:
    """Run `anisocert ARGS... args...` in this process."""
    from anisocert.cli import app

    result = CliRunner().invoke(app, [*ARGS, *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def stored_counts(out) -> dict[str, tuple[int, int]]:
    """table -> (rows, distinct idx) in the run store."""
    db = sqlite3.connect(out / "run.sqlite")
    try:
        return {
            t: db.execute(f"SELECT COUNT(*), COUNT(DISTINCT idx) FROM {t}").fetchone()
            for t in ("records", "memory", "optimised")
        }
    finally:
        db.close()


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The uninterrupted 1-worker run (no Ray), its TSVs being what every Ray run must give."""
    out = tmp_path_factory.mktemp("reference") / "run"
    cli("--out", str(out))
    rows = tsv_rows(out)
    assert len(rows) == INPUTS + 1
    assert stored_counts(out)["memory"] == (INPUTS, INPUTS)
    return out


@pytest.fixture(scope="module")
def ray_local():
    """One in-process Ray cluster of 2 CPUs for a module's tests (ray_cluster joins it)."""
    import ray

    ray.init(  # "local": a new cluster, whatever RAY_ADDRESS says
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
    )
    try:
        yield ray
    finally:
        ray.shutdown()
