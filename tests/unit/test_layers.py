"""The layers, checked: the domain needs only the standard library, the use cases never reach
into adapters or entrypoints, adapters never into entrypoints, and no two modules import each
other in a circle (imports only for type checking aside)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import service

ROOT = Path(service.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _deferred(node: ast.stmt) -> bool:
    """Code that runs later than the import, or never: function bodies, TYPE_CHECKING blocks."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    return isinstance(node, ast.If) and _is_type_checking(node)


def _children(node: ast.stmt) -> list[ast.stmt]:
    """The statements nested in a class, if, try or with, which run at import time."""
    nested: list[ast.stmt] = []
    for field in ("body", "orelse", "finalbody"):
        value = getattr(node, field, [])
        if isinstance(value, list):
            nested += [child for child in value if isinstance(child, ast.stmt)]
    for handler in getattr(node, "handlers", []):
        nested += handler.body
    return nested


def imports(path: Path, *, at_import_time: bool) -> Iterator[str]:
    """The modules a file imports; with `at_import_time`, only those imported when it is
    (not inside functions, not only for type checking)."""
    tree = ast.parse(path.read_text(), filename=str(path))

    def walk(nodes: list[ast.stmt]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield node.module
                yield from (f"{node.module}.{alias.name}" for alias in node.names)
            elif _deferred(node):
                if not at_import_time:
                    yield from walk(node.body)  # type: ignore[attr-defined]
            else:
                yield from walk(_children(node))

    yield from walk(tree.body)


ALL = modules()


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("service.app", ("service.adapters", "service.entrypoints", "service.devstack")),
        ("service.adapters", ("service.entrypoints", "service.devstack")),
    ],
)
def test_a_layer_never_imports_the_ones_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        name: sorted(i for i in imports(path, at_import_time=False) if i.startswith(forbidden))
        for name, path in ALL.items()
        if name.startswith(layer)
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_the_domain_needs_only_the_standard_library() -> None:
    wrong = {
        name: sorted(
            i
            for i in imports(path, at_import_time=False)
            if not i.startswith("service.domain")
            and i.partition(".")[0] not in sys.stdlib_module_names
            and i != "__future__"
        )
        for name, path in ALL.items()
        if name.startswith("service.domain")
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {
        name: {i for i in imports(path, at_import_time=True) if i in ALL and i != name}
        for name, path in ALL.items()
    }
    # A package's __init__ imported on the way to a submodule is not a dependency on the
    # package's contents: only edges to real modules count.
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []


def test_the_walk_sees_imports() -> None:
    # Guards the tests above against passing vacuously.
    assert "service.app.ports" in set(imports(ALL["service.app.kernel"], at_import_time=True))
    assert len(ALL) > 50
