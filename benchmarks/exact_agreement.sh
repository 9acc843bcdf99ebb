#!/usr/bin/env bash
# Exact vs float sampler on the shipped digits models (issue 22): certified accuracy at every grid radius.
#   bash benchmarks/exact_agreement.sh OUT_DIR [N] [SKIP]
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
out=$1 n=${2:-10000} skip=${3:-5}
for noise in gaussian uniform; do
  [ "${SKIP_RUNS:-}" = 1 ] && break
  sigma=$([ "$noise" = gaussian ] && echo 0.25 || echo 0.5)
  for sampler in float exact; do
    "$PY" -m anisocert certify --model "builtin:digits-$noise" --data digits --method fixed --sigma "$sigma" \
      --n "$n" --n0 100 --skip "$skip" --sampler "$sampler" --no-progress --batch-size 2000 \
      --out "$out/$noise-$sampler" > "$out/$noise-$sampler.log"
  done
done
"$PY" - "$out" <<'PYTHON'
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
grids = {"gaussian": np.arange(0, 1.01, 0.125), "uniform": np.arange(0, 0.51, 0.0625)}  # l1 radii of half-width 0.5 stay below 0.5
worst = 0.0
for noise, grid in grids.items():
    acc = {}
    for sampler in ("float", "exact"):
        rows = [l.split("\t") for l in (out / f"{noise}-{sampler}" / "certify.tsv").read_text().splitlines()]
        head, rows = rows[0], rows[1:]
        r, c = (np.array([float(x[head.index(k)]) for x in rows]) for k in ("radius", "correct"))
        acc[sampler] = [float(np.mean((r >= g) & (c == 1))) for g in grid]
    diff = np.abs(np.subtract(acc["exact"], acc["float"]))
    worst = max(worst, float(diff.max()))
    print(f"{noise} ({len(rows)} inputs): radius " + " ".join(f"{g:g}" for g in grid))
    for sampler in ("float", "exact"):
        print(f"  {sampler:5s} " + " ".join(f"{a:.3f}" for a in acc[sampler]))
    print(f"  |diff| max {diff.max():.3f} ({diff.max() * len(rows):.0f} inputs)")
print(f"largest difference in certified accuracy: {worst:.3f}")
PYTHON
