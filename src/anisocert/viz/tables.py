"""A table of numbers and its two renderings (GitHub Markdown, LaTeX booktabs), the best entry per column
in bold. Shared by the report and the runtime comparison."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Table", "latex_escape", "to_latex", "to_markdown"]


@dataclass
class Table:
    """A table of numbers: rows are runs, columns are quantities; rendered by to_markdown / to_latex.

    values has shape (len(rows), len(columns)); NaN marks "not available". formats[j] is a format spec
    for column j; best[j] is "max", "min" or None: which entries of column j are set in bold.
    """

    rows: list[str]
    columns: list[str]
    values: np.ndarray
    formats: list[str]
    best: list[str | None]
    corner: str = "run"
    caption: str = ""


def _cells(table: Table, bold) -> list[list[str]]:
    """Formatted cells; entries equal to their column's best (when > 1 row) wrapped by bold(). A column
    that is 0 for every run has no best: nothing is bold in it."""
    cells = [[""] * len(table.columns) for _ in table.rows]
    for j, spec in enumerate(table.formats):
        column = table.values[:, j]
        finite = np.isfinite(column)
        target = None
        if table.best[j] and len(table.rows) > 1 and (column[finite] != 0).any():
            target = column[finite].max() if table.best[j] == "max" else column[finite].min()
        for i, value in enumerate(column):
            if not finite[i]:
                cells[i][j] = "-"
                continue
            text = format(int(value), spec) if spec == "d" else format(value, spec)
            cells[i][j] = bold(text) if value == target else text
    return cells


def to_markdown(table: Table) -> str:
    """GitHub Markdown: a header row, right-aligned numbers, the best entry per column in **bold**."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| " + " | ".join([escape(table.corner), *map(escape, table.columns)]) + " |",
        "|:---|" + "---:|" * len(table.columns),
    ]
    for label, row in zip(table.rows, _cells(table, lambda t: f"**{t}**"), strict=True):
        lines.append("| " + " | ".join([escape(label), *row]) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` (needs \\usepackage{booktabs}); the best entry per column in \\textbf."""
    lines = [
        "\\begin{tabular}{l" + "r" * len(table.columns) + "}",
        "\\toprule",
        " & ".join(map(latex_escape, [table.corner, *table.columns])) + " \\\\",
        "\\midrule",
    ]
    for label, row in zip(table.rows, _cells(table, lambda t: f"\\textbf{{{t}}}"), strict=True):
        lines.append(" & ".join([latex_escape(label), *row]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
