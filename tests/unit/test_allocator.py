"""malloc keeps freed memory (issue 25): a batch's activations are reused, not page-faulted back in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import anisocert
import anisocert.cli as cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults per allocation of a 48 MB tensor that is written and freed, in the steady state (the heap
# settles after a few allocations).
_FAULTS = """
import resource, sys, torch
from anisocert._allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(20):
    torch.empty(12 << 20).fill_(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = torch.empty(12 << 20)
    block.fill_(1)
    del block
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults(mode: str, **env) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_memory_is_reused_instead_of_faulted_back_in():
    applied, kept = _faults("keep")
    _, default = _faults("default")
    assert applied == "True"
    assert default > 10_000  # 48 MB = 12,288 pages, zero-filled by the kernel at every allocation
    assert kept < 100, kept


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_environment_can_turn_it_off():
    applied, faults = _faults("keep", ANISOCERT_KEEP_FREED_MEMORY="0")
    assert applied == "False" and faults > 10_000


def test_importing_the_library_changes_nothing_and_the_api_offers_it():
    code = "import anisocert, anisocert._allocator as a; print(a._applied)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"  # not applied by the import
    assert anisocert.keep_freed_memory is anisocert._allocator.keep_freed_memory


def test_the_command_line_applies_it_before_any_command(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(cli, "app", lambda: calls.append("app"))
    cli.main()
    assert calls == ["keep", "app"]
