"""The markdown tables of README.md and docs/ render: GitHub recognises a table only when its delimiter row
has as many cells as its header, and drops the cells of a longer row without a word."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _cells(line: str) -> int:
    """Cells of a table row: the unescaped pipes between the outer ones."""
    return len(re.findall(r"(?<!\\)\|", line.strip())) - 1


def _tables(text: str):
    """(line number, rows) of every pipe table outside code blocks."""
    rows, start, fenced = [], 0, False
    for number, line in enumerate(text.splitlines() + [""], 1):
        fenced ^= line.startswith("```")
        if line.startswith("|") and not fenced:
            start = start or number
            rows.append(line)
        elif rows:
            yield start, rows
            rows, start = [], 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_row_has_as_many_cells_as_its_header(page):
    bad = [
        f"{page.name}:{start + i}: {_cells(row)} cells, header {_cells(rows[0])}"
        for start, rows in _tables(page.read_text())
        for i, row in enumerate(rows)
        if _cells(row) != _cells(rows[0])
    ]
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_wrong_delimiter_row():
    text = "| a | b |\n|---|---|---|\n| 1 | 2 |\n\n| a \\| b | c |\n|---|---|\n"
    tables = list(_tables(text))
    assert [len(rows) for _, rows in tables] == [3, 2]
    assert [_cells(r) for r in tables[0][1]] == [2, 3, 2] and _cells(tables[1][1][0]) == 2
