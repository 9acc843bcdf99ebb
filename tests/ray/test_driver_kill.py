"""The driver of a 2-worker run killed with SIGKILL at a random point, then the same command again:
the records of an uninterrupted run, none lost or duplicated."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'anisocert[ray]')")

from .conftest import ARGS, INPUTS, stored_counts, tsv_rows  # noqa: E402

pytestmark = pytest.mark.ray


def _as_from_a_shell() -> None:
    """In the child before exec: SIGINT unblocked and at its default action, as a shell starts a command.
    Both are inherited across exec, and pytest may itself ignore SIGINT: a non-interactive shell starts a
    background job (`make test &`, `nohup ... &`) with SIGINT ignored (`bash -c 'python -c ... & wait'` shows
    SIG_IGN). The driver then never saw the Ctrl-C and finished with exit 0."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "anisocert", *ARGS, "--workers", "2", "--out", str(out)]
    # a session of its own: the Ray processes the driver starts can be found and ended with it
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_as_from_a_shell,
    )


def _stored(db) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _end_session(proc: subprocess.Popen) -> None:
    """SIGKILL what is left of the killed driver's Ray processes (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_sigkill_of_the_driver_then_resume(reference, tmp_path):
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    # once 2, 4 or 6 of the 12 inputs are stored, and up to 50 ms more: the driver is then waiting,
    # committing or running memory, and at least one chunk (about 0.15 s of CPU) is still running
    after_rows, delay = rng.choice([2, 4, 6]), rng.uniform(0.0, 0.05)
    out = tmp_path / "killed"
    proc = _start(out)
    try:
        deadline = time.time() + 240
        while _stored(out / "run.sqlite") < after_rows and proc.poll() is None:
            assert time.time() < deadline, "no records after 240 s"
            time.sleep(0.01)
        time.sleep(delay)
        assert proc.poll() is None, f"the run ended before the kill (seed {seed}): make it longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        _end_session(proc)
    done = stored_counts(out)["records"][0]
    assert after_rows <= done < INPUTS, f"seed {seed}"

    resumed = _start(out)
    try:
        _, err = resumed.communicate(timeout=300)
    finally:
        _end_session(resumed)
    assert resumed.returncode == 0, err.decode()
    assert tsv_rows(out) == tsv_rows(reference), f"seed {seed}"
    assert tsv_rows(out, "certify_nomemory.tsv") == tsv_rows(reference, "certify_nomemory.tsv")
    assert stored_counts(out) == {t: (INPUTS, INPUTS) for t in ("records", "memory", "optimised")}


def test_sigint_stops_after_committing_finished_chunks(reference, tmp_path):
    out = tmp_path / "interrupted"
    proc = _start(out)
    try:
        deadline = time.time() + 240
        while _stored(out / "run.sqlite") < 2 and proc.poll() is None:
            assert time.time() < deadline, "no records after 240 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the interrupt: make it longer"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        _end_session(proc)
    assert proc.returncode == 130, err.decode()
    assert "run the same command again to resume" in err.decode()
    done = stored_counts(out)["records"][0]
    assert 2 <= done < INPUTS
    # what was stored is what the uninterrupted run has for those inputs
    stored = tsv_rows(out, "certify_nomemory.tsv")
    whole = {row[0]: row for row in tsv_rows(reference, "certify_nomemory.tsv")}
    assert len(stored) == done + 1
    assert all(whole[row[0]] == row for row in stored)
