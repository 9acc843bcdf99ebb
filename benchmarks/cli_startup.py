"""Start-up cost of the command line: the CPU time of `anisocert --help` and `anisocert certify --help`.

Issue 17: every command, help included, used to import torch and torchvision before parsing (3.7-10 s
of CPU). The help must not (tests/cli/test_help.py checks that torch is never imported for it); this
section measures what it costs, in fresh interpreters as a user starts them.

    python benchmarks/cli_startup.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

COMMANDS = (("--help",), ("certify", "--help"))


def cpu_seconds(args: tuple[str, ...]) -> float:
    """User + system CPU seconds of one `python -m anisocert ARGS` (its output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "anisocert", *args], check=True, stdout=subprocess.DEVNULL, timeout=300
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_startup(rep=None, reps: int = 5) -> dict:
    """{command: median CPU seconds over reps runs}; adds a Markdown section to rep (a Report) if given."""
    cpu_seconds(COMMANDS[0])  # warm the file cache and the bytecode
    seconds = {" ".join(args): [cpu_seconds(args) for _ in range(reps)] for args in COMMANDS}
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    rows = [
        f"| `anisocert {k}` | {medians[k]:.3g} s [{min(v):.3g}-{max(v):.3g}] |" for k, v in seconds.items()
    ]
    load = os.getloadavg()[0]
    text = "\n".join(
        [
            "### Command-line start-up",
            "",
            f"CPU time (user + system) of a fresh `python -m anisocert ...`, median [min-max] of {reps} runs, "
            f"load average {load:.1f}; the help imports no torch.",
            "",
            "| command | CPU time |",
            "|---|---|",
            *rows,
        ]
    )
    if rep is not None:
        rep.add(text)
    else:
        print(text)
    return medians


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    cli_startup(reps=parser.parse_args().reps)
