"""The groups of personal data are spelled in three places, which must agree: the wire enum
(contracts), the domain enum, and the CHECK constraint on data_keys.field_group in the
migrations. The order store keeps one record column per group."""

from __future__ import annotations

import re

from contracts import orders as wire
from service.adapters.database import migrations
from service.adapters.order_store import RECORD_COLUMNS
from service.domain import orders as domain

FIELD_GROUP_CHECK = re.compile(
    r"CHECK\s*\(\s*field_group\s+IN\s*\(([^)]*)\)\s*\)", re.IGNORECASE | re.DOTALL
)
QUOTED = re.compile(r"'((?:[^']|'')*)'")


def groups_allowed_by_the_schema() -> set[str]:
    """The values of the latest CHECK on field_group, over every migration in order."""
    latest: tuple[str, str] | None = None  # (migration, the list inside IN (...))
    for _, name, sql in migrations():
        for match in FIELD_GROUP_CHECK.finditer(sql):
            latest = (name, match.group(1))
    assert latest is not None, "no migration constrains data_keys.field_group"
    where, listed = latest
    values = {value.replace("''", "'") for value in QUOTED.findall(listed)}
    assert values, f"{where}: no values in the field_group CHECK"
    return values


def test_wire_and_domain_groups_are_the_same() -> None:
    assert {g.value for g in wire.DataGroup} == {g.value for g in domain.DataGroup}


def test_the_schema_allows_exactly_the_domain_groups() -> None:
    assert groups_allowed_by_the_schema() == {g.value for g in domain.DataGroup}


def test_the_order_store_has_a_record_column_for_every_group() -> None:
    assert set(RECORD_COLUMNS) == set(domain.DataGroup)
    assert len(set(RECORD_COLUMNS.values())) == len(RECORD_COLUMNS), "one column per group"
