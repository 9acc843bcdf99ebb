"""Views of certification runs: read TSV logs and run directories, build tables, render Markdown and LaTeX.

A run is a ``Results``: one array per TSV column (one entry per evaluated input) and free-form metadata.
Cohen's logs (``idx label predict radius correct time``) and ANCER's (``... radius radius_proxy correct
min_sigma time``) are both read; ``radius_proxy`` defaults to ``radius``. Metrics come from
``anisocert.core.metrics`` at full precision; only the rendered text is rounded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.certificates import MEMORY_CHANGED
from ..core.metrics import AUTO, average_certified_radius, certified_accuracy, resolve_grid
from ..errors import DataLoadError, InvalidParameterError, RunStoreError
from .tables import Table, latex_escape, to_latex, to_markdown

__all__ = [
    "REQUIRED_COLUMNS",
    "Results",
    "Table",
    "read_tsv",
    "write_tsv",
    "load_results",
    "load_all",
    "summary_table",
    "side_by_side_table",
    "to_markdown",
    "to_latex",
    "cohen_table",
    "write_report",
]


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
    path = Path(path)
    names = list(results.columns)
    lines = ["\t".join(names)]
    for i in range(len(results)):
        cells = []
        for column in names:
            value = results.columns[column][i]
            cells.append(repr(float(value)) if isinstance(value, np.floating | float) else str(value))
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
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
    """The certify.tsv view and run.json meta of a run, computed from its store opened read-only."""
    from ..run.store import RunStore

    store = RunStore.read(run_dir)
    try:
        views = store.views()
    finally:
        store.close()
    header, lines = views["certify.tsv"]
    results = _parse_tsv([header, *lines], run_dir / "run.sqlite")
    results.meta = {**results.meta, **json.loads(views["run.json"][0])}
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


# ---------------------------------------------------------------------------------------------- tables


def _grid_label(radius: float) -> str:
    return f"r = {radius:g}"


def certified_radii(results: Sequence[Results], *, proxy: bool = False) -> np.ndarray:
    """The radii (or proxy radii) of the correct inputs of every run: what grid 'auto' is fitted to."""
    parts = [(r.radius_proxy if proxy else r.radius)[r.correct.astype(bool)] for r in results]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def summary_table(results: Sequence[Results], grid, *, proxy: bool = False) -> Table:
    """Rows = runs; columns = n, certified accuracy at each R of grid, ACR.

    With proxy=True the certified accuracy is on radius_proxy and the columns end with ACR and the average
    certified proxy radius ("ACR proxy"). grid 'auto' is fitted to the radii tabulated (metrics.auto_grid).
    """
    grid = resolve_grid(grid, radii=certified_radii(results, proxy=proxy))
    columns = ["n", *(_grid_label(r) for r in grid), "ACR"] + (["ACR proxy"] if proxy else [])
    values = []
    for run in results:
        radius = run.radius_proxy if proxy else run.radius
        row = [
            len(run),
            *certified_accuracy(radius, run.correct, grid),
            average_certified_radius(run.radius, run.correct),
        ]
        if proxy:
            row.append(average_certified_radius(run.radius_proxy, run.correct))
        values.append(row)
    what = "proxy radius" if proxy else "radius"
    return Table(
        rows=[run.name for run in results],
        columns=columns,
        values=np.array(values, dtype=np.float64).reshape(len(results), len(columns)),
        formats=["d"] + [".3f"] * (len(columns) - 1),
        best=[None] + ["max"] * (len(columns) - 1),
        caption=f"Certified accuracy at {what} r (fraction of all n inputs; abstentions count as 0) and ACR.",
    )


def _method(run: Results) -> str:
    """The run's method: its ``method`` column (certify.tsv), else meta["method"] or meta["config"]["method"]."""
    if "method" in run.columns and len(run):
        return str(run.columns["method"][0])
    config = run.meta.get("config")
    return str(run.meta.get("method") or (config.get("method") if isinstance(config, dict) else "") or "")


def _kept_share(run: Results) -> float:
    """ancer: the share of inputs whose anisotropic certificate was reported (not fallen back to the
    isotropic one; the ``fallback`` column); NaN for other methods or without the column."""
    if _method(run) != "ancer" or "fallback" not in run.columns:
        return math.nan
    return float(np.mean(run.columns["fallback"].astype(np.int64) == 0))


def _proxy_gain(run: Results, isotropic: Results | None) -> float:
    """The run's ACR proxy over the isotropic run's ACR, on the inputs both certified; NaN without one."""
    if isotropic is None:
        return math.nan
    common = np.intersect1d(run.columns["idx"], isotropic.columns["idx"])
    if common.size == 0:
        return math.nan
    mine, theirs = np.isin(run.columns["idx"], common), np.isin(isotropic.columns["idx"], common)
    base = average_certified_radius(isotropic.radius[theirs], isotropic.correct[theirs])
    gain = average_certified_radius(run.radius_proxy[mine], run.correct[mine])
    return gain / base if base > 0 else math.nan


def _side_by_side_row(run: Results, isotropic: Results | None = None) -> list[float]:
    """n, ACR, ACR proxy, fraction changed by memory, median optimisation time, mean certification time,
    mean estimation draws (NaN for a TSV without the draws column), proxy gain over the isotropic run,
    share of anisotropic certificates kept."""
    nan = math.nan
    if "memory_status" in run.columns:
        changed = float(np.mean(np.isin(run.columns["memory_status"].astype(str), MEMORY_CHANGED)))
    else:
        changed = float(run.meta.get("memory_changed", nan))
    if "opt_time" in run.columns:
        opt_time = float(np.median(run.columns["opt_time"].astype(np.float64)))
    else:
        opt_time = float(run.meta.get("opt_time", nan))
    return [
        len(run),
        average_certified_radius(run.radius, run.correct),
        average_certified_radius(run.radius_proxy, run.correct),
        changed,
        opt_time,
        float(np.mean(run.columns["time"])),
        float(np.mean(run.columns["draws"])) if "draws" in run.columns else nan,
        _proxy_gain(run, isotropic),
        _kept_share(run),
    ]


def side_by_side_table(results: Sequence[Results]) -> Table:
    """Per run: n, ACR, ACR proxy, share changed by memory, median optimisation and mean certification time,
    mean estimation draws, proxy gain over the isotropic run, share of anisotropic certificates kept.

    The memory fraction comes from a ``memory_status`` column (share of records shrunk, abstained inside a foreign region or adopted), else
    meta["memory_changed"]; the optimisation time from an ``opt_time`` column (median, seconds), else
    meta["opt_time"]; certification time is the mean of the ``time`` column (seconds per input); draws the
    mean of the ``draws`` column (estimation draws per input; sequential runs spend fewer than N). The proxy
    gain is the run's ACR proxy over the ACR of the first isotropic run among ``results`` (method column or
    meta), on the inputs both certified; NaN when there is none. The kept share (ancer only) is the share of
    inputs whose ``fallback`` column is 0: the anisotropic certificate was reported.
    """
    isotropic = next((run for run in results if _method(run) == "isotropic"), None)
    columns = [
        "n",
        "ACR",
        "ACR proxy",
        "memory changed",
        "opt time (s, median)",
        "cert time (s/input)",
        "draws (mean/input)",
        "proxy / iso ACR",
        "aniso kept",
    ]
    return Table(
        rows=[run.name for run in results],
        columns=columns,
        values=np.array([_side_by_side_row(run, isotropic) for run in results], dtype=np.float64).reshape(
            -1, len(columns)
        ),
        formats=["d", ".3f", ".3f", ".3f", ".3g", ".3g", ".0f", ".3f", ".2f"],
        best=[None, "max", "max", None, None, None, None, "max", None],
        caption="Side by side: average certified radius and proxy radius, share of certificates changed by "
        "memory, time and draws per input, the proxy radius over the isotropic run's radius, and the share "
        "of anisotropic certificates kept (not fallen back to the isotropic one).",
    )


def cohen_table(results: Sequence[Results], grid, labels: Sequence[str] | None = None) -> str:
    """Cohen et al.'s Markdown table (analysis/markdown/vary_noise_*): certified accuracy at each r of grid.

    Same text as their analyze.py: header ``r = {:.3}``, values with 2 decimals, the first largest entry
    of each column (compared at full precision) followed by ``<b>*</b>``, row labels ``<b> label </b>``.
    labels default to the run names.
    """
    grid = resolve_grid(grid, radii=certified_radii(results))
    labels = [run.name for run in results] if labels is None else list(labels)
    if len(labels) != len(results):
        raise InvalidParameterError(
            f"labels has {len(labels)} entries for {len(results)} runs; give one per run"
        )
    accuracy = np.array([certified_accuracy(run.radius, run.correct, grid) for run in results])
    best = accuracy.argmax(axis=0)  # first row among ties, as numpy's argmax
    text = "|  | " + "".join(f"r = {r:.3} |" for r in grid) + "\n"
    text += "| --- | " + " --- |" * len(grid) + "\n"
    for i, label in enumerate(labels):
        marks = ["<b>*</b>" if best[j] == i else "" for j in range(len(grid))]
        text += f"<b> {label} </b>| " + "".join(
            f"{v:.2f}{m} |" for v, m in zip(accuracy[i], marks, strict=True)
        )
        text += "\n"
    return text


# ---------------------------------------------------------------------------------------------- report


def _differs(run: Results) -> bool:
    return not np.array_equal(run.radius_proxy, run.radius.astype(np.float64))


def _runs_section(results: Sequence[Results]) -> list[str]:
    lines = ["## Runs", ""]
    for run in results:
        scalars = {
            k: v for k, v in run.meta.items() if isinstance(v, str | int | float | bool) and k != "label"
        }
        extra = ", ".join(f"{k}={v}" for k, v in scalars.items())
        lines.append(
            f"- **{run.name}**: {len(run)} inputs from `{run.source}`" + (f" ({extra})" if extra else "")
        )
    return lines + [""]


def write_report(
    results: Sequence[Results],
    out_dir: str | os.PathLike,
    *,
    grid,
    formats: Sequence[str] = ("md", "tex"),
    plots: bool = True,
) -> list[Path]:
    """Write report.md and/or report.tex (tables) and the certified-accuracy plots into out_dir.

    grid is an array of radii or a name/range accepted by ``metrics.resolve_grid`` ("auto", "l2-cifar",
    "0:1.5:0.25"); "auto" is fitted to each table's radii. The proxy-radius table and plot are added when some run's radius_proxy differs from
    its radius. Returns the paths written.
    """
    results = list(results)
    if not results:
        raise InvalidParameterError("no runs given; pass at least one TSV file or run directory")
    unknown = set(formats) - {"md", "tex"}
    if unknown:
        raise InvalidParameterError(
            f"formats={tuple(formats)!r} has unknown {sorted(unknown)}; use 'md' and/or 'tex'"
        )
    from .plots import check_out_dir

    if not (isinstance(grid, str) and grid.strip() == AUTO):
        grid = resolve_grid(grid)  # a bad grid fails before anything is written
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = [("Certified accuracy (radius)", summary_table(results, grid))]
    proxy = any(_differs(run) for run in results)
    if proxy:
        tables.append(("Certified accuracy (proxy radius)", summary_table(results, grid, proxy=True)))
    tables.append(("Side by side", side_by_side_table(results)))
    from .plots import runtime_summary

    tables.append(("Runtime", runtime_summary(results)))
    written: list[Path] = []
    figures: list[str] = []
    if plots:
        from .plots import plot_certified_accuracy, plot_runtime

        figures = ["certified_accuracy", "certified_accuracy_proxy"] if proxy else ["certified_accuracy"]
        for stem in figures:
            written += plot_certified_accuracy(results, out_dir / stem, proxy=stem.endswith("proxy"))
        written += plot_runtime(results, out_dir / "runtime")
        figures.append("runtime")
    if "md" in formats:
        lines = ["# Certification report", "", *_runs_section(results)]
        for title, table in tables:
            lines += [f"## {title}", "", table.caption, "", to_markdown(table)]
        lines += [f"![{stem}]({stem}.png)\n" for stem in figures]
        written.append(out_dir / "report.md")
        written[-1].write_text("\n".join(lines))
    if "tex" in formats:
        lines = ["% anisocert report: \\input this file; needs \\usepackage{booktabs,graphicx}", ""]
        for _, table in tables:
            lines += ["\\begin{table}[t]", "\\centering", "\\small", to_latex(table).rstrip("\n")]
            lines += [f"\\caption{{{latex_escape(table.caption)}}}", "\\end{table}", ""]
        for stem in figures:
            lines += [
                "\\begin{figure}[t]",
                "\\centering",
                f"\\includegraphics[width=\\columnwidth]{{{stem}.pdf}}",
            ]
            lines += ["\\end{figure}", ""]
        written.append(out_dir / "report.tex")
        written[-1].write_text("\n".join(lines))
    return written
