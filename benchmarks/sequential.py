"""Sequential certification (--radii, issue 16) against fixed-N certification on the same inputs and seed.

    python benchmarks/sequential.py --fixed RUN [RUN ...] --sequential RUN [RUN ...] [--label TEXT]

The runs are made with `anisocert certify` (commands in docs/benchmarks.md); a fixed-N run may be split
over several run directories (index ranges of the same settings: records depend only on (seed, idx)).
Prints one Markdown table: per run, inputs, mean estimation draws per input (and N / mean), mean time
per input, certified accuracy at every grid radius of the sequential run, and the inputs the sequential
run certifies below the fixed-N run at each radius. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from anisocert.run.store import RunStore


def _records(dirs: list[str]) -> tuple[dict, dict]:
    """{idx: Certificate} (raw) over the run directories, and the first run's config."""
    records, config = {}, None
    for d in dirs:
        store = RunStore.read(d)
        try:
            records.update({c.idx: c for c in store.certificates().rows()})
            config = config or store.config
        finally:
            store.close()
    return records, config


def _level_counts(records: dict, idx: list[int], grid: np.ndarray) -> np.ndarray:
    """Inputs certified correct at each grid radius (radius >= r, full precision; abstain never)."""
    radius = np.array([records[i].radius for i in idx])
    ok = np.array([records[i].correct == 1 and records[i].prediction >= 0 for i in idx])
    return np.array([int(np.sum(ok & (radius >= r))) for r in grid])


def _below(fixed: dict, seq: dict, idx: list[int], grid: np.ndarray) -> np.ndarray:
    """Per grid radius, inputs the fixed-N run certifies there and the sequential run does not."""

    def at(rec, r: float) -> bool:
        return rec.correct == 1 and rec.prediction >= 0 and rec.radius >= r

    return np.array([sum(at(fixed[i], r) and not at(seq[i], r) for i in idx) for r in grid])


def compare(fixed_dirs: list[str], seq_dirs: list[str], label: str) -> str:
    fixed, fixed_config = _records(fixed_dirs)
    seq, seq_config = _records(seq_dirs)
    idx = sorted(set(fixed) & set(seq))
    grid = np.concatenate([[0.0], np.asarray(seq_config.budget.radii)])
    n = seq_config.budget.n
    head = ["run", "inputs", "mean draws", "N / mean", "s / input"] + [f"r = {r:g}" for r in grid]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, recs in (("fixed N", fixed), ("sequential", seq)):
        draws = np.array([recs[i].draws for i in idx], dtype=np.float64)
        seconds = float(np.mean([recs[i].time for i in idx]))
        acc = _level_counts(recs, idx, grid) / len(idx)
        cells = [name, len(idx), f"{draws.mean():,.0f}", f"{n / draws.mean():.1f}", f"{seconds:.2f}"]
        lines.append("| " + " | ".join(map(str, cells + [f"{a:.2f}" for a in acc])) + " |")
    below = _below(fixed, seq, idx, grid)
    above = _below(seq, fixed, idx, grid)
    cells = ["seq below / above fixed (inputs)", "", "", "", ""] + [
        f"{b} / {a}" for b, a in zip(below, above)
    ]
    lines.append("| " + " | ".join(map(str, cells)) + " |")
    stops = np.array([seq[i].draws for i in idx])
    at_n = int(np.sum(stops == n))
    summary = (
        f"{label}: {len(idx)} inputs, N = {n:,}, alpha = {seq_config.budget.alpha:g}, grid {[float(g) for g in grid]}; "
        f"{at_n} inputs drew all N; looks {json.dumps(seq_config.schedule.to_dict()['looks'])}; "
        f"fixed-N config {fixed_config.method} {fixed_config.noise} sigma={fixed_config.sigma}"
    )
    return summary + "\n\n" + "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", nargs="+", required=True)
    parser.add_argument("--sequential", nargs="+", required=True)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    for d in args.fixed + args.sequential:
        if not (Path(d) / "run.sqlite").exists():
            print(f"error: {d} is not a run directory", file=sys.stderr)
            return 2
    print(compare(args.fixed, args.sequential, args.label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
