"""The row types statements send their rows as (migration 0023) are declared, and never changed
by a later migration: a running instance sends exactly the attributes its build knows, so an
altered type would fail every batch of the instances of the earlier build during a rollout."""

from __future__ import annotations

import re
from pathlib import Path

import service

MIGRATIONS = Path(service.__file__).parent / "adapters" / "migrations"
SOURCES = Path(service.__file__).parent
ROW_TYPES = "0023_row_types.sql"


def declared() -> set[str]:
    text = (MIGRATIONS / ROW_TYPES).read_text()
    return set(re.findall(r"CREATE TYPE (\w+) AS", text))


def test_every_row_type_a_statement_names_is_declared() -> None:
    named = {
        name
        for path in SOURCES.rglob("*.py")
        for name in re.findall(r"::(\w+)\[\]", path.read_text())
        if name not in {"text", "bytea", "bigint", "uuid", "bool", "int", "integer"}
    }
    assert named, "statements send rows as row types"
    assert named <= declared(), named - declared()


def test_no_later_migration_alters_or_drops_a_row_type() -> None:
    types = declared()
    assert {"outbox_row", "document_history_row", "order_row"} <= types
    number = int(ROW_TYPES[:4])
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if int(path.name[:4]) <= number:
            continue
        text = path.read_text().lower()
        for name in types:
            changed = re.search(rf"\b(alter|drop)\s+type\s+(if\s+exists\s+)?{name}\b", text)
            assert changed is None, f"{path.name} changes {name}: add a type of its own instead"
