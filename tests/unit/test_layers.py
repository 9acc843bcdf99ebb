"""The package's shape: imports point down the layers, with no cycle (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# A module may import only from its own layer or the layers below it (lower number).
LAYERS = {
    "anisocert.errors": 0,
    "anisocert._checks": 0,
    "anisocert._allocator": 0,
    "anisocert.core": 1,
    "anisocert.data": 2,
    "anisocert.models": 2,
    "anisocert.run": 3,
    "anisocert.train": 4,  # trains base models (and the toy figures' models)
    "anisocert.viz": 5,
    "anisocert.experiment": 6,
    "anisocert.selftest": 6,
    "anisocert.demo": 7,
    "anisocert.cli": 8,
    "anisocert": 9,  # the public API (__init__) and __main__
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / "anisocert").rglob("*.py")}


def _imports(name: str, path: Path, modules) -> set[str]:
    """Every anisocert module that ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # from package import submodule names the submodule
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _layer(name: str) -> int:
    best = max((k for k in LAYERS if name == k or name.startswith(k + ".")), key=len)
    return LAYERS[best]


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        g.add_edges_from((name, t) for t in _imports(name, path, modules))
    return g


def test_no_import_cycle(graph):
    # package __init__ files re-export their modules: an edge into a package's own __init__ from inside
    # the package is not a dependency of the layer on itself
    g = graph.copy()
    g.remove_edges_from([(a, b) for a, b in graph.edges if a.startswith(b + ".")])
    cycles = list(nx.simple_cycles(g))
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_point_down(graph):
    upward = [(a, b) for a, b in graph.edges if _layer(b) > _layer(a) and not a.startswith(b + ".")]
    assert upward == [], f"imports that point up a layer: {upward}"


def test_the_walk_sees_imports():
    modules = _modules()
    assert "anisocert.core.noise" in _imports(
        "anisocert.core.smooth", modules["anisocert.core.smooth"], modules
    )
    assert "anisocert.core.ancer" in _imports(
        "anisocert.run.worker", modules["anisocert.run.worker"], modules
    )
