"""The layering a newcomer relies on, checked on the source: the sync engine imports no
service, pages, API and CLI open no transaction, the API and the web UI do not import each
other, SQL is written only in storage/, warehouse/ and query/, and no module is too long."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "cohortsync"
MAX_LINES = 450
SQL_HOMES = ("storage", "warehouse", "query")
SQL_BUILDERS = frozenset({"select", "insert", "update", "delete", "text", "func", "exists"})


def _modules(package: str = "") -> Iterator[Path]:
    yield from sorted((SOURCE / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _calls(path: Path) -> set[str]:
    """Names called as ``name(...)`` or ``x.name(...)`` in the module."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                names.add(function.id)
            elif isinstance(function, ast.Attribute):
                names.add(function.attr)
    return names


def _sql(path: Path) -> set[str]:
    """How the module writes SQL: statement builders it reaches through ``sa.``, and the
    tables it names (``cohortsync.storage.tables``)."""
    tree = ast.parse(path.read_text(), str(path))
    used: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sa"
            and node.attr in SQL_BUILDERS
        ):
            used.add(f"sa.{node.attr}")
    if "cohortsync.storage.tables" in _imports(path):
        used.add("storage.tables")
    return used


def test_the_sync_engine_imports_no_service() -> None:
    offenders = {
        path.name: sorted(m for m in _imports(path) if m.startswith("cohortsync.services"))
        for path in _modules("sync")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


@pytest.mark.parametrize("package", ["api", "web", "cli"])
def test_pages_api_and_commands_open_no_transaction(package: str) -> None:
    opening = {"read_transaction", "write_transaction"}
    offenders = [path.name for path in _modules(package) if _calls(path) & opening]
    assert offenders == []


def _importing(package: str, prefix: str) -> list[str]:
    return [p.name for p in _modules(package) if any(m.startswith(prefix) for m in _imports(p))]


def test_the_api_and_the_web_ui_do_not_import_each_other() -> None:
    assert _importing("api", "cohortsync.web") == []
    assert _importing("web", "cohortsync.api") == []


def test_sql_is_written_only_where_the_data_lives() -> None:
    offenders = {
        str(path.relative_to(SOURCE)): sorted(_sql(path))
        for path in _modules()
        if path.relative_to(SOURCE).parts[0] not in SQL_HOMES and _sql(path)
    }
    assert offenders == {}


def test_no_module_is_longer_than_a_newcomer_reads_at_once() -> None:
    long = {
        str(path.relative_to(SOURCE)): lines
        for path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
