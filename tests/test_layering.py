"""Imports go one way only (see STYLE.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"agent", "collector", "controller", "firmware_catalog", "lab", "fernwart_cli"}
# package → the packages of ours it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "firmware_catalog": set(),
    "collector": set(),
    "agent": {"collector"},
    "controller": {"collector", "firmware_catalog"},
    "lab": {"collector"},
    "fernwart_cli": OURS,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package: str) -> None:
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for imported in _imports(path) - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not bad, "\n".join(bad)


def test_controller_never_imports_a_driver() -> None:
    bad = []
    for path in (ROOT / "controller").rglob("*.py"):
        text = path.read_text()
        for driver in ("collector.snmp", "collector.host", "collector.graph", "collector.webex"):
            if driver in text:
                bad.append(f"{path.relative_to(ROOT)} mentions {driver}")
    assert not bad, "\n".join(bad)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Our modules that ``path`` imports outside functions, ``if TYPE_CHECKING:`` blocks included
    (a cycle through type hints is a cycle too): ``from a.b import c`` counts as a.b.c when that is
    a module, else as a.b. Imports inside a function are left out: one defers an import on purpose
    (controller.web.auth → controller.web.console, for the login page)."""
    tree = ast.parse(path.read_text(), str(path))
    deferred = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in deferred:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & modules


def _graph(package: str) -> dict[str, set[str]]:
    paths = {_module(path): path for path in (ROOT / package).rglob("*.py")}
    return {name: _imported_modules(path, set(paths)) for name, path in paths.items()}


def test_storage_never_imports_the_ingest_stage() -> None:
    graph = _graph("controller")
    bad = [
        f"{name} imports {imported}"
        for name, imports in graph.items()
        if name.startswith("controller.storage")
        for imported in imports
        if imported == "controller.ingest" or imported.startswith("controller.ingest.")
    ]
    for path in (ROOT / "controller" / "storage").rglob("*.py"):  # deferred imports too
        text = path.read_text()
        if "controller.ingest" in text or "from controller import ingest" in text:
            bad.append(f"{path.relative_to(ROOT)} mentions controller.ingest")
    assert not bad, "\n".join(bad)
    assert "controller.ingest.prepare" in graph  # the check looks at the package it means


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_cycle(package: str) -> None:
    """Imports between our modules (see :func:`_imported_modules`) form no cycle."""
    graph = _graph(package)
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        path.append(name)
        for imported in sorted(graph.get(name, ())):
            visit(imported)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
