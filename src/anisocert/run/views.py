"""The text views of a run, rebuilt from its store: certify.tsv (memory-based when memory is on),
certify_nomemory.tsv (the raw certificates) and run.json (the summary). Radii at full precision (repr)."""

from __future__ import annotations

import json
from pathlib import Path

from .records import MemoryRecord, Record

__all__ = ["TSV_COLUMNS", "views", "write_lines"]

TSV_COLUMNS = ("idx", "label", "predict", "radius", "radius_proxy", "correct", "min_sigma", "time")


def views(store) -> dict[str, tuple[str, list[str]]]:
    """{file name: (header, lines)} of certify.tsv, certify_nomemory.tsv and run.json,
    computed from the stored records (report reads a run directory through these, never the files)."""
    records = {r.idx: r for r in store.records()}
    memory = {m.idx: m for m in store.memory_records()}
    extra = ("pA_lower", "gap", "method", "fallback", "opt_time", "memory_status", "draws")
    header = "\t".join(TSV_COLUMNS + extra)
    method = store.config.method

    def row(r: Record, m: MemoryRecord | None) -> str:
        predict, radius, proxy, correct, status = r.predict, r.radius, r.radius_proxy, r.correct, "none"
        if m is not None:
            predict, radius, proxy, correct, status = (
                m.predict,
                m.radius,
                m.radius_proxy,
                m.correct,
                m.status,
            )
        values = (
            r.idx,
            r.label,
            predict,
            repr(float(radius)),
            repr(float(proxy)),
            correct,
            repr(float(r.min_sigma)),
            repr(float(r.time)),
            repr(float(r.pA_lower)),
            repr(float(m.gap if m else r.gap)),
            method,
            r.fallback,
            repr(float(r.opt_time)),
            status,
            r.draws_spent,
        )
        return "\t".join(map(str, values))

    use_memory = store.config.uses_memory
    final = [row(r, memory.get(i)) for i, r in records.items() if not use_memory or i in memory]
    views = {"certify.tsv": (header, final)}
    views["certify_nomemory.tsv"] = (header, [row(r, None) for r in records.values()])
    views["run.json"] = (json.dumps(store.summary(), indent=2, sort_keys=True), [])
    return views


def write_lines(path: Path, header: str, lines: list[str]) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written view."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text("\n".join([header, *lines]) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
