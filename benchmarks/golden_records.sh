#!/usr/bin/env bash
# Golden records for a behaviour-preserving change (issue 14): certify 12 small runs through the CLI with the
# code of SRC (every method, noise and fallback, and sequential certification), then compare two such outputs
# on every certify.tsv / certify_nomemory.tsv column but the wall-clock ones (time, opt_time).
#   bash benchmarks/golden_records.sh run SRC_DIR OUT_DIR      # e.g. a worktree of the old commit's src/
#   bash benchmarks/golden_records.sh compare OLD_OUT NEW_OUT
# GOLDEN_ARGS adds options to every run, e.g. GOLDEN_ARGS="--sampler float" for a code that has the exact
# sampler (issue 22) against one that predates it.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
if [ "$1" = run ]; then
  src=$2 out=$3
  mkdir -p "$out"
  common=(--max 10 --n 2000 --n0 100 --batch-size 500 --no-progress ${GOLDEN_ARGS:-})
  certify() { name=$1; shift; PYTHONPATH="$src" "$PY" -m anisocert certify "$@" "${common[@]}" --out "$out/$name" > "$out/$name.log"; }
  for noise in gaussian uniform; do
    model=builtin:digits-$noise
    certify "$noise-fixed" --model "$model" --method fixed
    certify "$noise-iso" --model "$model" --method isotropic
    certify "$noise-ancer" --model "$model" --method ancer
    certify "$noise-ancer-both" --model "$model" --method ancer --fallback both --ancer-objective paper
    certify "$noise-ancer-off" --model "$model" --method ancer --fallback off
  done
  certify gaussian-seq --model builtin:digits-gaussian --method isotropic --radii 0.25,0.5
  certify gaussian-ancer-seq --model builtin:digits-gaussian --method ancer --fallback both --radii 0.25,0.5
elif [ "$1" = compare ]; then
  "$PY" - "$2" "$3" <<'PYTHON'
import sys
from pathlib import Path

old, new = map(Path, sys.argv[1:3])
bad = 0
for run in sorted(p.parent.name for p in old.glob("*/certify.tsv")):
    for name in ("certify.tsv", "certify_nomemory.tsv"):
        a, b = ((d / run / name).read_text().splitlines() for d in (old, new))
        head = a[0].split("\t")
        keep = [k for k, c in enumerate(head) if c not in ("time", "opt_time")]
        same = a[0] == b[0] and len(a) == len(b) and all(
            [x.split("\t")[k] for k in keep] == [y.split("\t")[k] for k in keep] for x, y in zip(a, b)
        )
        bad += not same
        print(f"{run}/{name}: {'identical' if same else 'DIFFERENT'} ({len(a) - 1} inputs)")
sys.exit(1 if bad else 0)
PYTHON
else
  echo "usage: $0 run SRC_DIR OUT_DIR | compare OLD_OUT NEW_OUT" >&2; exit 2
fi
