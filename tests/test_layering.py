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
