"""The role table, walked pair by pair: every role, every command type, every status a command
can ask for and every part an update can change."""

from __future__ import annotations

from itertools import product

import pytest

from contracts.orders import ORDER_COMMAND
from contracts.purchase_orders import PURCHASE_ORDER_COMMAND
from service.domain import orders
from service.domain import purchase_orders as po
from service.domain.permissions import (
    BUILT_IN,
    COMMAND_TYPES,
    DESTRUCTIVE,
    ORDERS_AUTHORITY,
    PERMISSIONS,
    PURCHASE_ORDERS_AUTHORITY,
    REQUIRED_SCOPE,
    Access,
    Reach,
    Role,
)

STAFF = (Role.USER, Role.SERVICE, Role.SYSTEM)
# What a customer may do, written out by hand: the table must say exactly this.
CUSTOMER_MAY = {
    "order.create",
    "order.update",
    "order.change_status",
    "order.delete",
    "order.redact",
    "customer.redact",
}


def _contract_types() -> set[str]:
    found: set[str] = set()
    for adapter in (PURCHASE_ORDER_COMMAND, ORDER_COMMAND):
        found |= set(adapter.json_schema()["discriminator"]["mapping"])
    return found


def test_the_table_names_every_command_type_of_the_contracts_once() -> None:
    assert sorted(COMMAND_TYPES) == sorted(set(COMMAND_TYPES))
    assert set(COMMAND_TYPES) == set(REQUIRED_SCOPE)
    assert set(COMMAND_TYPES) == _contract_types()
    for role in Role:
        assert set(PERMISSIONS[role]) <= set(COMMAND_TYPES)


@pytest.mark.parametrize(("role", "command_type"), list(product(Role, COMMAND_TYPES)))
def test_every_role_and_command_type(role: Role, command_type: str) -> None:
    problems = BUILT_IN.problems(role, Access(command_type))
    may = role in STAFF or command_type in CUSTOMER_MAY
    assert (problems == []) is may
    if not may:
        [problem] = problems
        assert (problem.code.value, problem.field) == ("forbidden", "type")
        assert problem.message == f"a {role} may not send {command_type}"


ORDER_TARGETS = [status.value for status in orders.Status]
PURCHASE_ORDER_TARGETS = [status.value for status in po.Status]


@pytest.mark.parametrize(
    ("role", "command_type", "status"),
    [
        *product(Role, ["order.change_status"], ORDER_TARGETS),
        *product(Role, ["purchase_order.change_status"], PURCHASE_ORDER_TARGETS),
    ],
)
def test_every_role_and_transition(role: Role, command_type: str, status: str) -> None:
    problems = BUILT_IN.problems(role, Access(command_type, status=status))
    if role in STAFF:
        assert problems == []
    elif command_type.startswith("purchase_order."):
        assert [p.field for p in problems] == ["type"]
    elif status == "cancelled":
        assert problems == []  # a customer may cancel their own order
    else:
        # Fulfilment statuses move stock: never a customer's to set.
        [problem] = problems
        assert (problem.code.value, problem.field) == ("forbidden", "payload.status")
        assert problem.message == "a customer may move a document only to 'cancelled'"


@pytest.mark.parametrize(("role", "part"), list(product(Role, [p.value for p in orders.Part])))
def test_every_role_and_part_of_an_update(role: Role, part: str) -> None:
    problems = BUILT_IN.problems(role, Access("order.update", parts=(part,)))
    if role is Role.CUSTOMER and part == "items":
        [problem] = problems
        assert (problem.code.value, problem.field) == ("forbidden", "payload.items")
    else:
        assert problems == []


def test_an_unknown_role_may_do_nothing() -> None:
    [problem] = BUILT_IN.problems("admin", Access("order.create"))
    assert problem.field == "type"


def test_only_customers_reach_no_further_than_their_own_orders() -> None:
    for role, command_type in product(Role, COMMAND_TYPES):
        reach = BUILT_IN.reach(role, command_type)
        if role is Role.CUSTOMER:
            assert reach is (Reach.OWN if command_type in CUSTOMER_MAY else None)
        else:
            assert reach is Reach.ANY
    # The deciders mask exactly the actors whose reach is OWN: those with a customer_id.
    assert orders.Actor("customer", "C").customer_id == "C"
    for role in STAFF:
        assert orders.Actor(role, "C").customer_id is None


def test_destructive_commands_are_the_deletions_and_erasures() -> None:
    assert {t for t in COMMAND_TYPES if t.endswith((".delete", ".redact"))} == DESTRUCTIVE


def test_the_families_authorities_split_the_table_without_losing_a_row() -> None:
    parts = (PURCHASE_ORDERS_AUTHORITY, ORDERS_AUTHORITY)
    assert {t: s for a in parts for t, s in a.scopes.items()} == dict(REQUIRED_SCOPE)
    assert frozenset().union(*(a.destructive for a in parts)) == DESTRUCTIVE
    for role in Role:
        rows = {t: rule for a in parts for t, rule in a.permissions.get(role, {}).items()}
        assert rows == dict(PERMISSIONS[role])
    assert not set(PURCHASE_ORDERS_AUTHORITY.scopes) & set(ORDERS_AUTHORITY.scopes)
