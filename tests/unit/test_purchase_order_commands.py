"""decide() for editing, receipts, invoices and deletion; stock movements for each rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain import purchase_orders as po
from service.domain.problems import ErrorCode
from service.domain.purchase_orders.stock import movements
from service.domain.stock import Bucket, Movement
from tests.unit.builders import details, invoice, order, receipt

ALL = [s.value for s in po.Status]


def problems(decision: po.Decision) -> list[tuple[ErrorCode, str | None]]:
    assert isinstance(decision, po.Rejected), decision
    return [(p.code, p.field) for p in decision.problems]


def events(decision: po.Decision) -> tuple[po.PurchaseOrderEvent, ...]:
    assert isinstance(decision, po.Accepted), decision
    return decision.events


def decide(command: po.PurchaseOrderCommand, current: po.State | None) -> po.Decision:
    return po.decide(command, current, "PO-1")


def after(current: po.State, decision: po.Decision) -> po.State:
    return po.fold(current, events(decision), "t", "PO-1")[-1].after


# Full update (seed 004's PUT): only in draft.


def test_a_draft_can_be_replaced_entirely() -> None:
    replacement = details(supplier_id="SUP-2", products=(po.ProductLine("C", 1),))
    state = after(order(), decide(po.UpdatePurchaseOrder(replacement), order()))
    assert isinstance(state, po.PurchaseOrder)
    assert (state.details, state.version) == (replacement, 4)


@pytest.mark.parametrize("status", [s for s in ALL if s != "draft"])
def test_an_order_past_draft_is_not_editable(status: str) -> None:
    decision = decide(po.UpdatePurchaseOrder(details()), order(status))
    assert problems(decision) == [(ErrorCode.NOT_EDITABLE, "type")]
    assert isinstance(decision, po.Rejected)
    assert f"in '{status}'" in decision.problems[0].message


def test_an_update_is_validated_like_a_create() -> None:
    twice = details(products=(po.ProductLine("A", 1), po.ProductLine("A", 2)))
    assert problems(decide(po.UpdatePurchaseOrder(twice), order())) == [
        (ErrorCode.INVALID_REQUEST, "payload.products.0.sku"),
        (ErrorCode.INVALID_REQUEST, "payload.products.1.sku"),
    ]


# Shipping details: only while open, only the listed fields, only the named ones change.


def test_shipping_details_change_only_the_named_fields_while_open() -> None:
    current = order("open", details=details(shipping_carrier="UPS"))
    changes = (("tracking_number", "1Z999"), ("note_to_supplier", None))
    state = after(current, decide(po.UpdateShippingDetails(changes), current))
    assert isinstance(state, po.PurchaseOrder)
    assert state.details.tracking_number == "1Z999"
    assert state.details.shipping_carrier == "UPS"
    assert state.details.products == current.details.products


@pytest.mark.parametrize("status", [s for s in ALL if s != "open"])
def test_shipping_details_are_not_editable_outside_open(status: str) -> None:
    decision = decide(po.UpdateShippingDetails((("tracking_number", "X"),)), order(status))
    assert problems(decision) == [(ErrorCode.NOT_EDITABLE, "type")]


def test_fields_outside_the_shipping_list_are_refused_by_name() -> None:
    decision = decide(po.UpdateShippingDetails((("supplier_id", "X"),)), order("open"))
    assert problems(decision) == [(ErrorCode.INVALID_REQUEST, "payload.supplier_id")]


def test_an_empty_shipping_update_is_refused() -> None:
    assert problems(decide(po.UpdateShippingDetails(()), order("open"))) == [
        (ErrorCode.INVALID_REQUEST, "payload")
    ]


def test_shipping_dates_are_checked_against_the_stored_ones() -> None:
    current = order("open", details=details(order_date=datetime(2025, 3, 1, tzinfo=UTC)))
    change = (("expected_delivery_date", datetime(2025, 2, 1, tzinfo=UTC)),)
    assert problems(decide(po.UpdateShippingDetails(change), current)) == [
        (ErrorCode.INVALID_REQUEST, "payload.expected_delivery_date")
    ]


# Receipts.


def test_the_first_receipt_moves_open_to_receiving() -> None:
    decision = decide(po.RecordReceipt(receipt(A=3)), order("open"))
    assert events(decision) == (
        po.PurchaseOrderStatusChanged(po.Status.OPEN, po.Status.RECEIVING),
        po.ReceiptRecorded(receipt(A=3)),
    )


def test_the_receipt_that_completes_every_line_moves_to_received() -> None:
    current = order("receiving", receipts=(receipt("R-1", A=10, B=1),))
    decision = decide(po.RecordReceipt(receipt("R-2", B=3)), current)
    assert events(decision) == (
        po.ReceiptRecorded(receipt("R-2", B=3)),
        po.PurchaseOrderStatusChanged(po.Status.RECEIVING, po.Status.RECEIVED),
    )


def test_one_receipt_of_everything_while_open_makes_three_versions() -> None:
    state = after(order("open"), decide(po.RecordReceipt(receipt(A=10, B=4)), order("open")))
    assert isinstance(state, po.PurchaseOrder)
    assert (state.status, state.version) == (po.Status.RECEIVED, 6)


@pytest.mark.parametrize("status", ["draft", "received", "closed", "cancelled"])
def test_receipts_only_while_open_or_receiving(status: str) -> None:
    assert problems(decide(po.RecordReceipt(receipt(A=1)), order(status))) == [
        (ErrorCode.INVALID_STATUS, "type")
    ]


def test_every_bad_receipt_line_is_named() -> None:
    current = order("receiving", receipts=(receipt("R-1", A=8),))
    bad = po.Receipt(
        "R-1",
        (
            po.ReceiptLine("A", 3),  # 8 + 3 > 10
            po.ReceiptLine("Z", 1),  # not ordered
            po.ReceiptLine("B", 1),
            po.ReceiptLine("B", 1),  # twice
        ),
    )
    decision = decide(po.RecordReceipt(bad), current)
    assert problems(decision) == [
        (ErrorCode.ALREADY_EXISTS, "payload.receipt_id"),
        (ErrorCode.INVALID_REQUEST, "payload.lines.0.quantity"),
        (ErrorCode.INVALID_REQUEST, "payload.lines.1.sku"),
        (ErrorCode.INVALID_REQUEST, "payload.lines.2.sku"),
        (ErrorCode.INVALID_REQUEST, "payload.lines.3.sku"),
    ]
    assert isinstance(decision, po.Rejected)
    assert "exceed the ordered 10 (already received 8)" in decision.problems[1].message


# Invoices.


@pytest.mark.parametrize("status", ["draft", "cancelled"])
def test_no_invoice_on_a_draft_or_cancelled_order(status: str) -> None:
    assert problems(decide(po.LinkInvoice(invoice()), order(status))) == [
        (ErrorCode.INVALID_STATUS, "type")
    ]


@pytest.mark.parametrize("status", ["open", "receiving", "received", "closed"])
def test_invoices_link_once_each(status: str) -> None:
    state = after(order(status), decide(po.LinkInvoice(invoice()), order(status)))
    assert isinstance(state, po.PurchaseOrder)
    assert state.invoices == (invoice(),)
    assert problems(decide(po.LinkInvoice(invoice()), state)) == [
        (ErrorCode.ALREADY_EXISTS, "payload.invoice_id")
    ]


# Deletion: every blocker at once; a tombstone afterwards.


@pytest.mark.parametrize("status", ["draft", "cancelled"])
def test_a_draft_or_cancelled_order_without_dependants_is_deleted(status: str) -> None:
    state = after(order(status), decide(po.DeletePurchaseOrder(), order(status)))
    assert state == po.DeletedPurchaseOrder("t", "PO-1", 4)


def test_deletion_names_the_status_and_every_receipt_and_invoice() -> None:
    current = order(
        "receiving",
        receipts=(receipt("R-1", A=1), receipt("R-2", A=1)),
        invoices=(invoice("INV-7"),),
    )
    decision = decide(po.DeletePurchaseOrder(), current)
    assert [code for code, _ in problems(decision)] == [
        ErrorCode.INVALID_STATUS,
        ErrorCode.HAS_DEPENDENCIES,
        ErrorCode.HAS_DEPENDENCIES,
        ErrorCode.HAS_DEPENDENCIES,
    ]
    assert isinstance(decision, po.Rejected)
    messages = " | ".join(p.message for p in decision.problems)
    for reference in ("'receiving'", "'R-1'", "'R-2'", "'INV-7'"):
        assert reference in messages


def test_a_cancelled_order_with_a_receipt_is_blocked_by_the_receipt_alone() -> None:
    current = order("cancelled", receipts=(receipt("R-1", A=1),))
    assert problems(decide(po.DeletePurchaseOrder(), current)) == [
        (ErrorCode.HAS_DEPENDENCIES, "purchase_order_id")
    ]


@pytest.mark.parametrize(
    "command",
    [
        po.DeletePurchaseOrder(),
        po.ChangePurchaseOrderStatus(po.Status.OPEN),
        po.UpdatePurchaseOrder(details()),
        po.RecordReceipt(receipt(A=1)),
    ],
)
def test_a_deleted_order_is_not_found_and_says_it_was_deleted(
    command: po.PurchaseOrderCommand,
) -> None:
    tombstone = po.DeletedPurchaseOrder("t", "PO-1", 4, datetime(2026, 1, 2, tzinfo=UTC))
    decision = decide(command, tombstone)
    assert problems(decision) == [(ErrorCode.NOT_FOUND, "purchase_order_id")]
    assert isinstance(decision, po.Rejected)
    assert "was deleted at 2026-01-02" in decision.problems[0].message


def test_a_deleted_id_is_not_reused() -> None:
    tombstone = po.DeletedPurchaseOrder("t", "PO-1", 4)
    assert problems(decide(po.CreatePurchaseOrder(details()), tombstone)) == [
        (ErrorCode.ALREADY_EXISTS, "purchase_order_id")
    ]


# Stock movements, one rule at a time.


def incoming(sku: str, quantity: int) -> Movement:
    return Movement("WH-1", sku, Bucket.INCOMING, quantity)


def on_hand(sku: str, quantity: int) -> Movement:
    return Movement("WH-1", sku, Bucket.ON_HAND, quantity)


def test_opening_an_order_makes_every_ordered_quantity_incoming() -> None:
    assert movements(order("draft"), order("open")) == (incoming("A", 10), incoming("B", 4))


def test_a_receipt_moves_stock_from_incoming_to_on_hand() -> None:
    before = order("receiving")
    after_receipt = order("receiving", receipts=(receipt(A=3),))
    assert movements(before, after_receipt) == (incoming("A", -3), on_hand("A", 3))


@pytest.mark.parametrize("status", ["open", "receiving"])
def test_cancelling_releases_what_is_still_outstanding(status: str) -> None:
    received = (receipt(A=6),) if status == "receiving" else ()
    before = order(status, receipts=received)
    cancelled = order("cancelled", receipts=received)
    expected = (
        (incoming("A", -4), incoming("B", -4))
        if received
        else (incoming("A", -10), incoming("B", -4))
    )
    assert movements(before, cancelled) == expected


def test_closing_with_quantity_outstanding_releases_it() -> None:
    received = (receipt(A=10, B=1),)
    assert movements(order("received", receipts=received), order("closed", receipts=received)) == (
        incoming("B", -3),
    )


@pytest.mark.parametrize(
    ("before", "after_state"),
    [
        (order("draft"), order("draft", details=details(products=(po.ProductLine("C", 9),)))),
        (order("draft"), order("cancelled")),
        (order("draft"), po.DeletedPurchaseOrder("t", "PO-1", 4)),
        (order("cancelled"), po.DeletedPurchaseOrder("t", "PO-1", 4)),
    ],
)
def test_drafts_and_deletions_move_nothing(before: po.State, after_state: po.State) -> None:
    assert movements(before, after_state) == ()
