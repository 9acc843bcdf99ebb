"""The package keeps its shape (issue 14): small modules with one job, short functions. The CLI's command
functions are exempt: their length is their option list."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "anisocert"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # code lines: the docstring aside


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _code_lines(node) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by job: {long}"


def test_no_function_is_over_60_lines_outside_the_cli_option_lists():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        for node in _functions(ast.parse(path.read_text())):
            if _code_lines(node) > MAX_FUNCTION_LINES:
                long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = _code_lines(node)
    assert not long, f"give these named helpers: {long}"
