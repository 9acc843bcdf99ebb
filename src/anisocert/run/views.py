"""The text views of a run, rebuilt from its store: certify.tsv (memory-based when memory is on),
certify_nomemory.tsv (the raw certificates) and run.json (the summary). The one TSV writer of the project
(report's ``write_tsv`` formats through ``tsv_text``): radii at full precision (repr)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.certificates import Certificates
from ._sqlite import write_error

__all__ = ["TSV_COLUMNS", "export", "tsv_columns", "tsv_text", "views"]

# Cohen's and ANCER's columns first (their logs read the same), then ours
TSV_COLUMNS = ("idx", "label", "predict", "radius", "radius_proxy", "correct", "min_sigma", "time")
EXTRA_COLUMNS = ("pA_lower", "gap", "method", "fallback", "opt_time", "memory_status", "draws")


def tsv_columns(certs: Certificates, method: str) -> dict[str, np.ndarray]:
    """The certify.tsv columns of a run's certificates (typed arrays, full precision)."""
    return {
        "idx": certs.idx,
        "label": certs.label,
        "predict": certs.prediction,
        "radius": certs.radius,
        "radius_proxy": certs.proxy_radius,
        "correct": certs.correct,
        "min_sigma": certs.min_theta,
        "time": certs.time,
        "pA_lower": certs.pA_lower,
        "gap": certs.gap,
        "method": np.array([method] * len(certs), dtype=object),
        "fallback": certs.fallback,
        "opt_time": certs.opt_time,
        "memory_status": np.array(
            ["none"] * len(certs) if certs.status is None else certs.status, dtype=object
        ),
        "draws": certs.draws,
    }


def tsv_text(columns: dict[str, np.ndarray]) -> str:
    """Tab-separated text of equal-length columns: a header, then a line per row; floats as repr."""
    names = list(columns)
    lines = ["\t".join(names)]
    for i in range(len(columns[names[0]]) if names else 0):
        cells = []
        for name in names:
            value = columns[name][i]
            cells.append(repr(float(value)) if isinstance(value, np.floating | float) else str(value))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def views(store) -> dict[str, str]:
    """{file name: text} of certify.tsv, certify_nomemory.tsv and run.json, from the stored certificates."""
    method = store.config.method
    return {
        "certify.tsv": tsv_text(tsv_columns(store.reported(theta=False), method)),
        "certify_nomemory.tsv": tsv_text(tsv_columns(store.certificates(theta=False), method)),
        "run.json": json.dumps(store.summary(), indent=2, sort_keys=True) + "\n",
    }


def export(store) -> list[Path]:
    """Write the views into the run directory. Every run directory has the three files: without memory
    (fixed sigma, --no-memory) the two TSV files are the same. Each file is replaced atomically (temp
    file + rename); a full disk leaves the previous views and is one line."""
    try:
        return [_write(store.run_dir / name, text) for name, text in views(store).items()]
    except OSError as err:
        raise write_error(store.run_dir, "the views (certify.tsv, run.json)", err) from None


def _write(path: Path, text: str) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
