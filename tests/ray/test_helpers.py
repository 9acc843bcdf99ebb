"""Ray-free parts of distributed.py: they run without Ray installed."""

import socket
import sys

import pytest

from anisocert.errors import InvalidParameterError
from anisocert.run.distributed import DistributedError, _check_reachable, _resources, import_ray


class _FakeRay:
    def __init__(self, *nodes):
        self._nodes = [{"Alive": True, "Resources": r} for r in nodes]

    def nodes(self):
        return self._nodes


def test_without_ray_workers_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(InvalidParameterError, match=r"pip install 'anisocert\[ray\]'"):
        import_ray()


def test_cpus_are_split_fairly_and_fit_every_node():
    assert _resources(_FakeRay({"CPU": 2}), 2, gpus=False) == (1, 1, 0)
    assert _resources(_FakeRay({"CPU": 16}), 4, gpus=False) == (4, 4, 0)
    # 2 workers on nodes of 8 and 2 CPUs: 5 each would not fit on either node twice
    threads, cpus, _ = _resources(_FakeRay({"CPU": 8}, {"CPU": 2}), 2, gpus=False)
    assert cpus == 4
    assert _resources(_FakeRay({"CPU": 8, "GPU": 2}), 2, gpus=True) == (4, 1, 1)


def test_too_few_resources_is_one_clear_error():
    with pytest.raises(DistributedError, match="fewer than --workers 3"):
        _resources(_FakeRay({"CPU": 2}), 3, gpus=False)
    with pytest.raises(DistributedError, match="--workers 1 or --device cpu"):
        _resources(_FakeRay({"CPU": 8, "GPU": 1}), 2, gpus=True)


def test_an_address_nothing_answers_at_fails_at_once():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match="nothing answers"):
        _check_reachable(f"127.0.0.1:{port}", timeout=2)
    _check_reachable("auto")  # left to Ray
    _check_reachable("ray://head:10001")


def test_an_address_nothing_answers_at_leaves_no_run_directory(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'anisocert[ray]')")
    from typer.testing import CliRunner

    from anisocert.cli import app

    from .conftest import ARGS

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*ARGS, "--out", str(out), "--ray-address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: cannot join the Ray cluster at --ray-address 127.0.0.1:{port} (")
    assert "nothing answers" in lines[0]
    assert not out.exists()  # checked before the run store is opened
