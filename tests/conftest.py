"""Shared test setup: deterministic, single-threaded torch (CI has 2 cores), malloc as the CLI sets it."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from anisocert import keep_freed_memory  # noqa: E402

torch.set_num_threads(1)
keep_freed_memory()  # as the command line does: batches reuse freed memory (issue 25)
