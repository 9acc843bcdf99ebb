"""A run as ``Results``: read from a TSV log (Cohen's or ANCER's format) or from a run directory's store.

One array per TSV column (one entry per evaluated input) and free-form metadata. Cohen's logs (``idx
label predict radius correct time``) and ANCER's (``... radius radius_proxy correct min_sigma time``) are
both read; ``radius_proxy`` defaults to ``radius``. Values are kept at full precision.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataLoadError, InvalidParameterError, RunStoreError

__all__ = ["REQUIRED_COLUMNS", "Results", "load_all", "load_results", "read_tsv", "write_tsv"]

REQUIRED_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
_INT_COLUMNS = ("idx", "label", "predict", "correct")
_FLOAT_COLUMNS = ("radius", "radius_proxy", "min_sigma")
_TIMEDELTA = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")  # str(datetime.timedelta)


@dataclass
class Results:
    """One certification run: per-input columns, each of shape (B,), and run metadata.

    ``columns`` holds at least idx, label, predict, radius, correct (0/1) and time (seconds per input);
    radius_proxy is added (a copy of radius) when absent. ``meta`` is free-form (method, noise, sigma...).
    """

    name: str
    columns: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.columns = {key: np.asarray(value) for key, value in self.columns.items()}
        missing = [c for c in REQUIRED_COLUMNS if c not in self.columns]
        if missing:
            raise InvalidParameterError(
                f"results {self.name!r} lack columns {missing}; need {REQUIRED_COLUMNS}"
            )
        lengths = {key: value.shape for key, value in self.columns.items()}
        if len(set(lengths.values())) != 1 or self.columns["idx"].ndim != 1:
            raise InvalidParameterError(
                f"results {self.name!r}: columns must be 1-D of one length, got {lengths}"
            )
        self.columns.setdefault("radius_proxy", self.columns["radius"].astype(np.float64).copy())

    def __len__(self) -> int:
        return int(self.columns["idx"].shape[0])

    @classmethod
    def from_certificates(cls, name: str, certs, method: str, meta: dict | None = None) -> Results:
        """A run's certificates (core.certificates.Certificates, with their run context) as the report
        reads them: the certify.tsv columns, at full precision, without a text round trip."""
        from ..run.views import tsv_columns

        return cls(name=name, columns=tsv_columns(certs, method), meta=dict(meta or {}))

    @property
    def radius(self) -> np.ndarray:
        return self.columns["radius"]

    @property
    def radius_proxy(self) -> np.ndarray:
        return self.columns["radius_proxy"]

    @property
    def correct(self) -> np.ndarray:
        return self.columns["correct"]


# ---------------------------------------------------------------------------------------------- reading


def _parse_time(text: str) -> float:
    """Seconds from '15.4' or from str(timedelta) such as '0:00:15.4' or '1 day, 0:00:01'."""
    match = _TIMEDELTA.match(text)
    if match is None:
        return float(text)
    days, hours, minutes, seconds = match.groups()
    return ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)


def _parse_column(name: str, cells: list[str]) -> np.ndarray:
    """Typed array for one column: known names get their type, others int, float or str in that order."""
    if name == "correct":
        cells = [{"True": "1", "False": "0"}.get(c, c) for c in cells]
    if name in _INT_COLUMNS:
        return np.array([int(c) for c in cells], dtype=np.int64)
    if name in _FLOAT_COLUMNS:
        return np.array([float(c) for c in cells], dtype=np.float64)
    if name == "time" or name.endswith("_time"):
        return np.array([_parse_time(c) for c in cells], dtype=np.float64)
    for kind in (np.int64, np.float64):
        try:
            return np.array(cells).astype(kind)
        except ValueError:
            continue
    return np.array(cells, dtype=object)


def read_tsv(path: str | os.PathLike, *, name: str | None = None) -> Results:
    """Read a Cohen-format or ANCER-format certification TSV (header line, then one line per input).

    Times may be seconds ('15.4') or h:mm:ss ('0:00:15.4'); both become seconds. Extra columns are kept
    (typed int, float or str). Raises DataLoadError on a missing file, a ragged or unparsable line,
    missing required columns or a repeated idx.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataLoadError(
            f"cannot read {path}: {exc.strerror}; pass a certify TSV or a run directory"
        ) from None
    return _parse_tsv(lines, path, name=name)


def _parse_tsv(lines: list[str], path: Path, *, name: str | None = None) -> Results:
    """read_tsv's parsing of the lines of a TSV; path names it in errors and in Results.source."""
    if not lines or not lines[0].strip():
        raise DataLoadError(
            f"{path} is empty; expected a header line 'idx label predict radius correct time'"
        )
    header = lines[0].rstrip("\r\n").split("\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing or len(set(header)) != len(header):
        raise DataLoadError(
            f"{path}: header {header} must name each of {list(REQUIRED_COLUMNS)} exactly once"
        )
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) != len(header):
            raise DataLoadError(
                f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(cells)}"
            )
        rows.append(cells)
    columns = {}
    for j, column in enumerate(header):
        try:
            columns[column] = _parse_column(column, [row[j] for row in rows])
        except ValueError as exc:
            raise DataLoadError(
                f"{path}: column {column!r} has a value that is not a number: {exc}"
            ) from None
    if not set(np.unique(columns["correct"])) <= {0, 1}:
        raise DataLoadError(f"{path}: column 'correct' must hold only 0 or 1")
    idx, counts = np.unique(columns["idx"], return_counts=True)
    if (counts > 1).any():
        raise DataLoadError(
            f"{path}: idx {int(idx[counts > 1][0])} appears more than once; deduplicate the log"
        )
    meta = {"format": "ancer" if "radius_proxy" in header else "cohen"}
    return Results(name=name or path.name, columns=columns, meta=meta, source=str(path))


def write_tsv(results: Results, path: str | os.PathLike) -> Path:
    """Write every column as a tab-separated file at full precision (floats as repr, time in seconds)."""
    from ..run.views import tsv_text

    path = Path(path)
    path.write_text(tsv_text(results.columns))
    return path


def load_results(path: str | os.PathLike, *, name: str | None = None) -> Results:
    """A run from a TSV file or a run directory.

    A run directory is read from its store (RUN_DIR/run.sqlite, opened read-only by RunStore.read): the
    certify.tsv and run.json it would export, so stale or edited files change nothing. A folder
    without a store is read from RUN_DIR/certify.tsv, with RUN_DIR/run.json as meta when present.
    The name is, in order: ``name``, meta["label"], the file or directory name.
    """
    path = Path(path)
    if not path.is_dir():
        return read_tsv(path, name=name)
    if (path / "run.sqlite").exists():  # the store is the truth: the exported files may be stale or edited
        results = _from_store(path)
        results.name = name or str(results.meta.get("label") or path.name)
        return results
    tsv = path / "certify.tsv"
    if not tsv.is_file():
        raise RunStoreError(f"run directory {path} has no certify.tsv; certify first or pass the TSV itself")
    results = read_tsv(tsv)
    meta_file = path / "run.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise RunStoreError(f"{meta_file} is not valid JSON ({exc}); rewrite or remove it") from None
        if not isinstance(meta, dict):
            raise RunStoreError(f"{meta_file} must hold a JSON object, got {type(meta).__name__}")
        results.meta = {**results.meta, **meta}
    results.name = name or str(results.meta.get("label") or path.name)
    results.source = str(path)
    return results


def _from_store(run_dir: Path) -> Results:
    """The reported certificates and run.json meta of a run, read from its store opened read-only (the
    certify.tsv columns, not its text)."""
    from ..run.store import RunStore

    store = RunStore.read(run_dir)
    try:
        certs, method, summary = store.reported(theta=False), store.config.method, store.summary()
    finally:
        store.close()
    meta = {"format": "ancer", **json.loads(json.dumps(summary, sort_keys=True))}  # as run.json reads back
    results = Results.from_certificates(run_dir.name, certs, method, meta)
    results.source = str(run_dir)
    return results


def load_all(paths: Sequence[str | os.PathLike]) -> list[Results]:
    """load_results for each path; a run without a label is named by its path relative to the common root."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InvalidParameterError("no runs given; pass at least one TSV file or run directory")
    absolute = [p.resolve() for p in paths]
    prefix = Path(os.path.commonpath(absolute))
    if prefix in absolute:  # one path, or one inside another: name relative to the parent
        prefix = prefix.parent
    runs = []
    for path, full in zip(paths, absolute, strict=True):
        results = load_results(path)
        if not (path.is_dir() and results.meta.get("label")):
            results.name = full.relative_to(prefix).as_posix()
        runs.append(results)
    return runs
