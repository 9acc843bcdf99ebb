"""A run killed mid-way and re-run gives the same records as an uninterrupted run (memory included)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.runs import tsv_rows

ARGS = [
    "certify",
    "--model",
    "builtin:digits-gaussian",
    "--data",
    "digits",
    "--method",
    "isotropic",
    "--iso-method",
    "search",
    "--iso-samples",
    "64",
    "--n0",
    "20",
    "--n",
    "2000",
    "--max",
    "24",
    "--inputs-per-batch",
    "3",
    "--batch-size",
    "1000",
    "--no-progress",
    "--seed",
    "3",
]


def _run(out, *, kill_after_rows=None):
    cmd = [sys.executable, "-m", "anisocert", *ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after_rows is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        return
    db = out / "run.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM records").fetchone()[0]
            except sqlite3.Error:
                rows = 0
            if rows >= kill_after_rows:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_records(tmp_path):
    _run(tmp_path / "whole")
    _run(tmp_path / "killed", kill_after_rows=6)
    rows = (
        sqlite3.connect(tmp_path / "killed" / "run.sqlite")
        .execute("SELECT COUNT(*) FROM records")
        .fetchone()[0]
    )
    assert 6 <= rows < 24
    _run(tmp_path / "killed")
    assert tsv_rows(tmp_path / "killed") == tsv_rows(tmp_path / "whole")
    assert len(tsv_rows(tmp_path / "whole")) == 25
    assert (tmp_path / "killed" / "certify_nomemory.tsv").exists()
