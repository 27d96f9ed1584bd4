"""contracts/ is what other services install to read and write our messages: it must import
with pydantic alone, so it never drags a Kafka client, FastStream or jsonschema into theirs.
The tools that need those live in contract_tools/."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import contracts

ALLOWED_ROOTS = frozenset(
    {
        "__future__",
        "contracts",
        "pydantic",
        "pydantic_core",
        "pydantic_extra_types",
        "email_validator",
    }
)
"""Beside the standard library: pydantic, its engine (pydantic_core), the pydantic project's own
package of extra types, whose country and currency codes come from pycountry rather than from a
copy of the ISO lists that would go stale, and email-validator, which pydantic's `email` extra
installs and whose special-use domain names the e-mail reader takes rather than copies."""

PACKAGE = Path(contracts.__file__).parent


def imported_roots(source: Path) -> set[str]:
    """The top-level package of every import in the file, wherever it is: one inside a function
    runs just the same, only later."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # A relative import (level > 0) stays inside the package.
            roots.add("contracts" if node.level else (node.module or "").partition(".")[0])
    return roots


def test_contracts_import_only_pydantic_and_the_standard_library() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no modules found under {PACKAGE}"
    foreign = {
        str(module.relative_to(PACKAGE.parent)): sorted(outside)
        for module in modules
        if (
            outside := {
                root
                for root in imported_roots(module)
                if root not in ALLOWED_ROOTS and root not in sys.stdlib_module_names
            }
        )
    }
    assert foreign == {}, f"contracts/ may import pydantic and the standard library only: {foreign}"


def test_the_check_sees_a_foreign_import(tmp_path: Path) -> None:
    # Guards the test above against passing vacuously (a walk that finds no imports at all).
    module = tmp_path / "m.py"
    module.write_text(
        "from __future__ import annotations\nimport json\nfrom . import x\n"
        "def f() -> None:\n    from aiokafka import AIOKafkaProducer\n"
    )
    assert imported_roots(module) == {"__future__", "json", "contracts", "aiokafka"}
