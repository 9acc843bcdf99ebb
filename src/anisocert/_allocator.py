"""Keep freed memory in the process instead of handing it back to the kernel (issue 25).

Every batch of noisy draws allocates activations of megabytes to tens of megabytes. With glibc's default
settings, large blocks are mmap'd and unmapped again on free (and the heap's top is trimmed), so the next
batch page-faults the same amount back in, zero-filled by the kernel: on a 2-core CPU that was half of
certification's time (system CPU). Three ``mallopt`` settings keep the memory for reuse:

- M_MMAP_MAX = 0: no block is mmap'd, every one comes from the heap and goes back to it. (Raising
  M_MMAP_THRESHOLD is not enough: glibc caps it at 32 MiB, and a 48 MB block above the cap was still
  mapped and unmapped at every allocation: 12,289 page faults each.) Where the heap cannot grow, glibc
  still falls back to mmap, so no allocation fails for it;
- M_TRIM_THRESHOLD = 2 GiB - 1 (the largest ``int``): freed memory at the heap's top is not given back;
- M_TOP_PAD = 64 MiB: the heap grows in large steps (address space only; pages count once touched).

The price is resident memory: the process keeps its peak. Nothing else changes (the same arithmetic in
the same order: records are identical). Where the C library is not glibc this does nothing; on a GPU the
device's memory has its own caching allocator and only the host's small allocations are concerned.

The command line, the demo, Ray workers and the benchmarks call ``keep_freed_memory()`` at start-up;
importing anisocert as a library changes nothing: call it yourself first thing in a script that runs
forward passes on a CPU. ``ANISOCERT_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # glibc's malloc.h
SETTINGS = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1, _M_TOP_PAD: 64 << 20}
OFF = "ANISOCERT_KEEP_FREED_MEMORY"

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (see the module docstring); True if it did.

    Idempotent; False (and nothing changed) where the C library is not glibc, where ``mallopt`` refuses
    a setting, or where the environment variable ANISOCERT_KEEP_FREED_MEMORY is 0.
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(OFF, "1").strip() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
