"""The import arrows of docs/ARCHITECTURE.md hold: each layer imports only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "openigrt"

BASE = {"errors", "uids", "config"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "uids": set(),
    "config": {"errors", "uids"},
    "geometry": BASE,
    "iod": BASE | {"geometry"},
    "net": BASE,
    "match": BASE | {"geometry"},
    "sim": BASE | {"geometry"},
    "plan": BASE | {"geometry", "iod"},
    "archive": BASE | {"net", "iod"},
    "workflow": BASE | {"geometry", "iod", "net", "match", "sim", "plan", "archive"},
    "cli": BASE | {"geometry", "iod", "net", "match", "sim", "plan", "archive", "workflow", "web"},
    "web": BASE | {"workflow"},
}


def _area(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imported_areas(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "openigrt" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    area = _area(path)
    assert area in ALLOWED, f"{path}: area {area!r} is not in the layer table of tests/test_layers.py"
    bad = _imported_areas(path) - ALLOWED[area] - {area, "__version__"}
    assert not bad, f"{path.relative_to(PKG)} ({area}) imports {sorted(bad)}, against docs/ARCHITECTURE.md"
