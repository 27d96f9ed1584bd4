"""The pure decision code: the transition table both ways and every decide() rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from service.domain import purchase_orders as po
from service.domain.problems import ErrorCode
from tests.unit.builders import details, order

ALLOWED = {
    ("draft", "open"),
    ("draft", "cancelled"),
    ("open", "receiving"),
    ("open", "cancelled"),
    ("receiving", "received"),
    ("receiving", "cancelled"),
    ("received", "closed"),
}
ALL_PAIRS = list(itertools.product([s.value for s in po.Status], repeat=2))


def codes(decision: po.Decision) -> list[ErrorCode]:
    assert isinstance(decision, po.Rejected)
    return [p.code for p in decision.problems]


def test_the_table_is_exactly_the_seed_table() -> None:
    table = {(a.value, b.value) for a, targets in po.TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_is_accepted(current: str, target: str) -> None:
    decision = po.decide(po.ChangePurchaseOrderStatus(po.Status(target)), order(current), "PO-1")
    assert decision == po.Accepted(
        (po.PurchaseOrderStatusChanged(po.Status(current), po.Status(target)),)
    )


@pytest.mark.parametrize(("current", "target"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_forbidden_transition_is_rejected_naming_both_statuses(current: str, target: str) -> None:
    decision = po.decide(po.ChangePurchaseOrderStatus(po.Status(target)), order(current), "PO-1")
    assert isinstance(decision, po.Rejected)
    [problem] = decision.problems
    assert problem.code is ErrorCode.INVALID_STATUS
    assert problem.field == "payload.status"
    assert problem.message.startswith(f"Cannot transition from '{current}' to '{target}'")


@pytest.mark.parametrize("terminal", ["closed", "cancelled"])
def test_terminal_statuses_say_so(terminal: str) -> None:
    decision = po.decide(po.ChangePurchaseOrderStatus(po.Status.OPEN), order(terminal), "PO-1")
    assert isinstance(decision, po.Rejected)
    assert "none (terminal)" in decision.problems[0].message


def test_create_starts_in_draft_at_version_one() -> None:
    decision = po.decide(po.CreatePurchaseOrder(details()), None, "PO-1")
    assert isinstance(decision, po.Accepted)
    [event] = decision.events
    state = po.evolve(None, event, tenant_id="t", purchase_order_id="PO-1")
    assert isinstance(state, po.PurchaseOrder), state
    assert (state.status, state.version) == (po.Status.DRAFT, 1)


def test_evolve_counts_one_version_per_event() -> None:
    state = po.evolve(
        order("draft", version=4),
        po.PurchaseOrderStatusChanged(po.Status.DRAFT, po.Status.OPEN),
        tenant_id="t",
        purchase_order_id="PO-1",
    )
    assert isinstance(state, po.PurchaseOrder), state
    assert (state.status, state.version) == (po.Status.OPEN, 5)


def test_create_of_an_existing_order_is_already_exists() -> None:
    assert codes(po.decide(po.CreatePurchaseOrder(details()), order("draft"), "PO-1")) == [
        ErrorCode.ALREADY_EXISTS
    ]


def test_change_of_a_missing_order_is_not_found_and_nothing_else() -> None:
    command = po.ChangePurchaseOrderStatus(po.Status.OPEN, expected_version=3)
    assert codes(po.decide(command, None, "PO-9")) == [ErrorCode.NOT_FOUND]


def test_every_problem_is_listed_not_just_the_first() -> None:
    command = po.ChangePurchaseOrderStatus(po.Status.CLOSED, reason="late", expected_version=7)
    assert codes(po.decide(command, order("draft", version=2), "PO-1")) == [
        ErrorCode.VERSION_CONFLICT,
        ErrorCode.INVALID_STATUS,
        ErrorCode.INVALID_REQUEST,
    ]


def test_expected_version_zero_means_must_not_exist() -> None:
    create = po.CreatePurchaseOrder(details(), expected_version=0)
    assert isinstance(po.decide(create, None, "PO-1"), po.Accepted)
    assert ErrorCode.VERSION_CONFLICT in codes(po.decide(create, order("draft"), "PO-1"))


def test_version_conflict_names_both_versions() -> None:
    decision = po.decide(
        po.ChangePurchaseOrderStatus(po.Status.OPEN, expected_version=1), order("draft", 4), "PO-1"
    )
    assert isinstance(decision, po.Rejected)
    assert decision.problems[0].message == "expected version 1, but the current version is 4"


def test_a_reason_is_accepted_only_when_cancelling() -> None:
    cancel = po.ChangePurchaseOrderStatus(po.Status.CANCELLED, reason="supplier out of stock")
    assert isinstance(po.decide(cancel, order("open"), "PO-1"), po.Accepted)
    open_with_reason = po.ChangePurchaseOrderStatus(po.Status.OPEN, reason="why not")
    decision = po.decide(open_with_reason, order("draft"), "PO-1")
    assert isinstance(decision, po.Rejected)
    assert [p.field for p in decision.problems] == ["payload.reason"]


def test_duplicate_skus_are_refused_on_every_line_that_repeats() -> None:
    lines = (po.ProductLine("A", 1), po.ProductLine("B", 1), po.ProductLine("A", 3))
    decision = po.decide(po.CreatePurchaseOrder(details(products=lines)), None, "PO-1")
    assert isinstance(decision, po.Rejected)
    assert [p.field for p in decision.problems] == [
        "payload.products.0.sku",
        "payload.products.2.sku",
    ]


def test_delivery_before_order_date_is_refused() -> None:
    dates = {
        "order_date": datetime(2025, 2, 1, tzinfo=UTC),
        "expected_delivery_date": datetime(2025, 1, 1, tzinfo=UTC),
    }
    decision = po.decide(po.CreatePurchaseOrder(details(**dates)), None, "PO-1")
    assert isinstance(decision, po.Rejected)
    assert [p.field for p in decision.problems] == ["payload.expected_delivery_date"]
