"""In process, on one shared 2-CPU Ray cluster: worker count and worker crashes change no record."""

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'anisocert[ray]')")

from anisocert.run.distributed import CRASH_ALWAYS, CRASH_HOOK, MAX_RESTARTS_HOOK  # noqa: E402

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


def test_device_cuda_on_a_cluster_without_gpus_is_one_error(ray_local, monkeypatch):
    import torch

    from anisocert.run.config import CertifyConfig
    from anisocert.run.distributed import DistributedError, certify_chunks

    assert not any(n["Resources"].get("GPU", 0) for n in ray_local.nodes())
    # the driver's own check would refuse cuda on a machine without GPUs: this is about the cluster's
    monkeypatch.setattr("anisocert._checks.check_device", lambda d: torch.device("cpu"))
    for device in ("cuda", "cuda:1"):
        config = CertifyConfig.from_flat(
            model="builtin:digits-gaussian", data="digits", device=device, workers=2
        )
        with pytest.raises(DistributedError, match=rf"^--device {device} and the Ray cluster has no GPU; "):
            next(certify_chunks(config, [[0]], {}))


def test_a_worker_that_always_dies_ends_the_run_resumably(ray_local, reference, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from anisocert.cli import app

    from .conftest import ARGS

    monkeypatch.setenv(CRASH_HOOK, CRASH_ALWAYS)  # every task exits its process
    monkeypatch.setenv(MAX_RESTARTS_HOOK, "1")  # each restart costs seconds
    out = tmp_path / "dies"
    result = CliRunner().invoke(app, [*ARGS, "--out", str(out), "--workers", "2"])
    # an AnisocertError: exit 2 (1 is a bug)
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = result.stderr.strip().splitlines()  # (Ray's own notes on the deaths go to stdout)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: a Ray worker died 2 times in a row (")
    assert lines[0].endswith("re-run the same command to resume, with fewer --workers if memory is short")
    assert stored_counts(out)["records"] == (0, 0)
    monkeypatch.delenv(CRASH_HOOK)
    monkeypatch.delenv(MAX_RESTARTS_HOOK)
    cli("--out", str(out), "--workers", "2")  # the same command, resumed
    assert tsv_rows(out) == tsv_rows(reference)
    assert stored_counts(out)["records"] == (INPUTS, INPUTS)


def test_sequential_radii_runs_give_the_same_records_on_two_workers(ray_local, tmp_path):
    # --radii: each input's rounds continue its own noise streams, so the workers change nothing
    radii = ("--n", "1000", "--radii", "0.25,0.5")
    cli("--out", str(tmp_path / "one"), *radii)
    cli("--out", str(tmp_path / "two"), "--workers", "2", *radii)
    assert tsv_rows(tmp_path / "two") == tsv_rows(tmp_path / "one")
    draws = [int(row[-1]) for row in tsv_rows(tmp_path / "one")[1:]]
    assert len(draws) == INPUTS and min(draws) < 2 * 1000  # ancer 'both': two sequential certificates
