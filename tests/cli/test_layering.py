"""The command line is a layer on top: no module of the core imports engine.cli."""

from __future__ import annotations

import ast
from pathlib import Path

import engine

ENGINE = Path(engine.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_does_not_import_the_cli() -> None:
    core = [p for p in ENGINE.rglob("*.py") if "cli" not in p.relative_to(ENGINE).parts]
    assert len(core) > 20
    offenders = {
        str(p.relative_to(ENGINE)): sorted(n for n in _imports(p) if n.startswith("engine.cli"))
        for p in core
    }
    assert {p: names for p, names in offenders.items() if names} == {}
