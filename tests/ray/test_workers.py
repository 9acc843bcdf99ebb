"""In process, on one shared 2-CPU Ray cluster: worker count and worker crashes change no record."""

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'anisocert[ray]')")

from anisocert.distributed import CRASH_HOOK  # noqa: E402

from .conftest import INPUTS, cli, stored_counts, tsv_rows  # noqa: E402

pytestmark = pytest.mark.ray


def test_two_workers_give_the_one_worker_records(ray_local, reference, tmp_path):
    out = tmp_path / "two"
    cli("--out", str(out), "--workers", "2")
    assert tsv_rows(out) == tsv_rows(reference)  # memory-based results
    assert tsv_rows(out, "certify_nomemory.tsv") == tsv_rows(reference, "certify_nomemory.tsv")
    assert stored_counts(out)["records"] == (INPUTS, INPUTS)


def test_a_worker_process_killed_mid_task_is_retried(ray_local, reference, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_HOOK, str(marker))  # the first task to run exits its process
    out = tmp_path / "crash"
    cli("--out", str(out), "--workers", "2")
    assert marker.exists(), "the crash hook did not fire"
    assert tsv_rows(out) == tsv_rows(reference)
    assert stored_counts(out)["records"] == (INPUTS, INPUTS)


def test_optimize_on_two_workers_then_certify_gives_the_reference(ray_local, reference, tmp_path):
    from typer.testing import CliRunner

    from anisocert.cli import app

    from .conftest import ARGS

    out = tmp_path / "optimised"
    result = CliRunner().invoke(app, ["optimize", *ARGS[1:], "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert stored_counts(out)["optimised"] == (INPUTS, INPUTS)
    assert stored_counts(out)["records"] == (0, 0)
    cli("--out", str(out))  # certify in this process with the stored sigma_x and theta_x
    assert tsv_rows(out) == tsv_rows(reference)
