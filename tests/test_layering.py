"""Imports go one way only, checked module by module (see STYLE.md §1); library privates stay in
their adapter.

Every module of ours is parsed (imports inside functions and ``TYPE_CHECKING`` blocks count) and
each import of one of our modules is checked against the rules of the importing module's package.
A private attribute of a third-party object (``client._client``, ``session._sock``) or a private
third-party module (``gufo.snmp._fast``) may appear only in the one adapter module of its library.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("agent", "collector", "controller", "firmware_catalog", "lab", "fernwart_cli", "runtime")

# importing module (prefix) → the modules of ours it may import (prefixes), besides its own package.
ALLOWED: dict[str, tuple[str, ...]] = {
    "firmware_catalog": (),  # a pure library: nothing of ours
    # The device-facing library needs no daemon code: neither the drivers nor the wire import runtime,
    # except the one backoff (pure, stdlib only) that the HTTP client layer retries with, and the one
    # vocabulary of families and version schemes, which the drivers report in.
    "collector": ("firmware_catalog.vocabulary", "runtime.backoff"),
    # What both daemons share; it builds on nothing of ours but the pydantic message cleaner.
    "runtime": ("collector.validation",),
    "agent": ("collector", "runtime"),
    # The controller speaks the wire contract and never imports a driver (or the registry that
    # loads drivers, or the collector's data model other than through the wire).
    "controller": ("collector.wire", "runtime", "firmware_catalog"),
    "lab": ("collector",),
    "fernwart_cli": OURS,
}
# Within the controller, storage never imports the stages that feed it or serve it.
FORBIDDEN_WITHIN: dict[str, tuple[str, ...]] = {
    "controller.storage": ("controller.ingest", "controller.web", "controller.service"),
}

# One adapter module per third-party library whose privates we use; nowhere else.
ADAPTERS: dict[str, tuple[str, ...]] = {
    "runtime.mqtt": ("aiomqtt", "paho"),
    "collector.snmp.gufo_adapter": ("gufo",),
}
# Underscore names that are public API (or our own private attributes set across classes).
PUBLIC_UNDERSCORE = {
    "_mapping",  # SQLAlchemy Row._mapping: documented; the underscore avoids clashing with column names
    "_exit",  # os._exit: documented
    "_SubParsersAction",  # argparse: the documented type of add_subparsers(), used in annotations
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(path): path for package in OURS for path in sorted((ROOT / package).rglob("*.py"))}


MODULES = _all_modules()


def _resolve(module: str, importer: str, level: int, is_package: bool) -> str:
    if level == 0:
        return module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path``; ``from pkg import mod`` yields ``pkg.mod``."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", name, node.level, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else base


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _ours(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in OURS


def _where(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def layering_violations(modules: dict[str, Path]) -> list[str]:
    bad = []
    for name, path in modules.items():
        package = name.split(".")[0]
        allowed = ALLOWED[package]
        forbidden = [f for prefix, fs in FORBIDDEN_WITHIN.items() if _within(name, prefix) for f in fs]
        for line, imported in imported_modules(name, path):
            if not _ours(imported):
                continue
            if _within(imported, package):
                ok = not any(_within(imported, f) for f in forbidden)
            else:
                ok = any(_within(imported, p) for p in allowed)
            if not ok:
                bad.append(f"{_where(path)}:{line} imports {imported}")
    return bad


def _private_name(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclass(frozen=True)
class _Private:
    line: int
    what: str


def _private_uses(path: Path) -> Iterator[_Private]:
    """``x._name`` with ``x`` not ``self``/``cls``, ``getattr(x, "_name")``, and imports of a
    private module (``a._b``) of a third-party package."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private_name(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}):
                yield _Private(node.lineno, f"attribute {node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in {"getattr", "setattr", "hasattr", "delattr"} and len(node.args) > 1:
                key = node.args[1]
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("_"):
                    yield _Private(node.lineno, f"attribute {key.value} (by name)")
        elif isinstance(node, ast.ImportFrom | ast.Import) and getattr(node, "level", 0) == 0:
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in names:
                if not _ours(module) and any(_private_name(part) for part in module.split(".")):
                    yield _Private(node.lineno, f"private module {module}")


def _own_private_names(modules: dict[str, Path]) -> set[str]:
    """Underscore names our own code defines: ``self._x = …``, ``_x: T`` or ``_x = …`` in a class
    body, ``def _x``. Using one of these across our own objects is our business."""
    names: set[str] = set()
    for module, path in modules.items():
        if module in ADAPTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                names.update(_class_body_names(node))
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                names.add(node.attr)
    return {name for name in names if _private_name(name)}


def _class_body_names(node: ast.ClassDef) -> Iterator[str]:
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            yield item.target.id
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            yield item.name
        elif isinstance(item, ast.Assign):
            yield from (t.id for t in item.targets if isinstance(t, ast.Name))


def _adapter_privates(modules: dict[str, Path]) -> set[str]:
    """The private names the adapters reach for: they belong to the libraries, whoever else
    happens to use the same name for a private of their own."""
    found = set()
    for name in ADAPTERS:
        for use in _private_uses(modules[name]):
            found.add(use.what.split()[1])
    return found


def private_violations(modules: dict[str, Path]) -> list[str]:
    library_names = _adapter_privates(modules)
    ours = _own_private_names(modules) - library_names
    bad = []
    for name, path in modules.items():
        if name in ADAPTERS:
            continue
        for use in _private_uses(path):
            kind, private = use.what.split()[0], use.what.split()[1]
            if kind == "attribute" and (private in ours or private in PUBLIC_UNDERSCORE):
                continue
            bad.append(f"{_where(path)}:{use.line} uses {use.what} outside its adapter")
    return bad


def test_imports_go_one_way_module_by_module() -> None:
    bad = layering_violations(MODULES)
    assert not bad, "\n".join(bad)


def test_library_privates_only_in_their_adapter() -> None:
    bad = private_violations(MODULES)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_each_adapter_checks_the_version_it_was_written_for(adapter: str) -> None:
    source = MODULES[adapter].read_text()
    assert "WRITTEN_FOR" in source
    assert "check_versions(" in source


# Every driver and source registered in the fernwart.collectors group, by the module it lives in.
REGISTERED = sorted({ep.module for ep in entry_points(group="fernwart.collectors")})


def test_drivers_are_registered() -> None:
    assert "collector.snmp.driver" in REGISTERED  # the check below looks at the group it means


@pytest.mark.parametrize("driver", REGISTERED)
def test_every_registered_driver_is_a_collector_module_the_daemons_never_import(driver: str) -> None:
    """A driver lives in the device-facing library (so it imports no daemon code), and neither
    the controller nor the agent imports it by name: the agent reaches it through the registry."""
    assert driver in MODULES, f"{driver}: not a module of ours"
    assert _within(driver, "collector"), f"{driver}: a driver belongs in collector/"
    importers = [
        f"{_where(path)}:{line}"
        for name, path in MODULES.items()
        if name.split(".")[0] in {"agent", "controller", "runtime"}
        for line, imported in imported_modules(name, path)
        if _within(imported, driver)
    ]
    assert not importers, f"{driver} imported by {importers}"


@pytest.mark.parametrize("driver", REGISTERED)
def test_the_checks_catch_what_they_are_for(tmp_path: Path, driver: str) -> None:
    """Mutants: a controller module importing a registered driver, an agent module reaching into
    aiomqtt."""
    controller = tmp_path / "ingest.py"
    session = MODULES["controller.ingest.session"]
    controller.write_text(session.read_text() + f"\nimport {driver}\n")
    agent = tmp_path / "publisher.py"
    reach_in = "\n\ndef f(client):\n    return client._client\n"
    agent.write_text(MODULES["agent.publisher"].read_text() + reach_in)
    mutated = {**MODULES, "controller.ingest.session": controller, "agent.publisher": agent}
    assert [line for line in layering_violations(mutated) if f"imports {driver}" in line]
    assert [line for line in private_violations(mutated) if "attribute _client" in line]


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
