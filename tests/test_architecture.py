"""The package stack is one-way: a package imports only packages below it, at any depth of the code.

Every import counts, at module level, inside functions and under TYPE_CHECKING: a type-only arrow upwards is
still a dependency a reader has to follow. The order is the README's architecture picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK = (
    "connectors",
    "engine.core",
    "engine.ops",
    "engine.trust",
    "kb",
    "engine.outcomes",
    "engine.analysers",
    "engine.intake",
    "engine.delivery",
    "engine.operators",
    "engine",
)
"""Bottom first: connectors know nothing of the desk, `engine` alone is the spine (runtime, scheduler, jobs, ...)."""
SPINE_MODULES = 10


def package_of(module: str) -> str | None:
    """The stack layer a dotted module name belongs to; None for anything outside the project."""
    matches = [layer for layer in STACK if module == layer or module.startswith(f"{layer}.")]
    return max(matches, key=len, default=None)


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {module for module in found if package_of(module)}


def source_files() -> list[Path]:
    return sorted(
        path
        for top in ("connectors", "engine", "kb")
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts
    )


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_a_package_imports_only_packages_below_it(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    layer = STACK.index(package_of(module) or "")
    upward = sorted(imported for imported in imported_modules(path) if STACK.index(package_of(imported) or "") > layer)
    assert upward == [], f"{module} ({STACK[layer]}) imports from a higher layer: {upward}"


def test_the_spine_stays_small() -> None:
    spine = [path.stem for path in (ROOT / "engine").glob("*.py") if path.stem != "__init__"]
    assert len(spine) <= SPINE_MODULES, sorted(spine)
