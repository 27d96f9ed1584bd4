"""The example state board's consistency rule, on records built with the contract's models:
versions it holds are skipped from either topic, events apply only when they give the whole
document, and a tombstone, a deletion or an erasure removes a document for good."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from contracts import orders as o
from contracts import purchase_orders as po
from contracts.state import PurchaseOrderState, state_key
from contracts.topics import ORDERS, PURCHASE_ORDERS
from examples.state_board.board import Board
from tests.support import details, order_details

NOW = datetime(2026, 11, 28, tzinfo=UTC)
KEY = b"tenant-a/PO-1"
SNAPSHOT = po.PurchaseOrderSnapshot.model_validate({**details(), "status": "draft"})


def meta(version: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": uuid4(),
        "tenant_id": "tenant-a",
        "version": version,
        "command_id": uuid4(),
        "occurred_at": NOW,
        **extra,
    }


def state(version: int, status: str = "draft") -> bytes:
    return (
        PurchaseOrderState(
            tenant_id="tenant-a",
            purchase_order_id="PO-1",
            version=version,
            event_id=uuid4(),
            event_type="purchase_order.status_changed",
            updated_at=NOW,
            snapshot=SNAPSHOT.model_copy(update={"status": po.PurchaseOrderStatus(status)}),
        )
        .model_dump_json()
        .encode()
    )


def status_changed(version: int, old: str, new: str) -> bytes:
    data = po.StatusChangeData(
        from_status=po.PurchaseOrderStatus(old), to_status=po.PurchaseOrderStatus(new)
    )
    return (
        po.PurchaseOrderStatusChanged(
            type="purchase_order.status_changed",
            purchase_order_id="PO-1",
            data=data,
            **meta(version),
        )
        .model_dump_json()
        .encode()
    )


def created() -> bytes:
    return (
        po.PurchaseOrderCreated(
            type="purchase_order.created", purchase_order_id="PO-1", data=SNAPSHOT, **meta(1)
        )
        .model_dump_json()
        .encode()
    )


def status_of(board: Board) -> tuple[int, str] | None:
    entry = board.documents(PURCHASE_ORDERS).get(KEY.decode())
    return None if entry is None else (entry.version, entry.snapshot.status.value)


def test_a_state_is_taken_and_events_it_already_covers_are_skipped() -> None:
    board = Board()
    board.apply_state(PURCHASE_ORDERS, KEY, state(2, "open"))
    assert board.apply_event(PURCHASE_ORDERS, created()) is None
    assert board.apply_event(PURCHASE_ORDERS, status_changed(2, "draft", "open")) is None
    assert status_of(board) == (2, "open")
    board.apply_event(PURCHASE_ORDERS, status_changed(3, "open", "receiving"))
    assert status_of(board) == (3, "receiving")
    assert board.apply_state(PURCHASE_ORDERS, KEY, state(3, "receiving")) is None


def test_an_event_past_a_gap_waits_for_its_state() -> None:
    board = Board()
    board.apply_event(PURCHASE_ORDERS, created())
    assert board.apply_event(PURCHASE_ORDERS, status_changed(3, "open", "cancelled")) is None
    assert status_of(board) == (1, "draft")
    assert board.behind == {(PURCHASE_ORDERS, KEY.decode())}
    board.apply_state(PURCHASE_ORDERS, KEY, state(3, "cancelled"))
    assert status_of(board) == (3, "cancelled")
    assert board.behind == set()


def test_a_tombstone_removes_for_good() -> None:
    board = Board()
    board.apply_state(PURCHASE_ORDERS, KEY, state(1))
    change = board.apply_state(PURCHASE_ORDERS, KEY, None)
    assert change is not None
    assert change.entry is None
    for late in (state(2, "open"), None):
        assert board.apply_state(PURCHASE_ORDERS, KEY, late) is None
    assert board.apply_event(PURCHASE_ORDERS, created()) is None
    assert status_of(board) is None


def test_a_deletion_or_an_erasure_event_removes_before_the_tombstone_arrives() -> None:
    board = Board()
    board.apply_event(PURCHASE_ORDERS, created())
    deleted = po.PurchaseOrderDeleted(
        type="purchase_order.deleted", purchase_order_id="PO-1", **meta(2)
    )
    board.apply_event(PURCHASE_ORDERS, deleted.model_dump_json().encode())
    assert status_of(board) is None
    assert board.apply_state(PURCHASE_ORDERS, KEY, state(1)) is None

    snapshot = o.OrderSnapshot(
        customer_id="CUST-1",
        warehouse_id="WH-1",
        status=o.OrderStatus.DELIVERED,
        items=[o.OrderItem.model_validate(item) for item in order_details()["items"]],
        total="55.00",
        currency="EUR",
        voucher_code=None,
    )
    order_created = o.OrderCreated(type="order.created", order_id="O-1", data=snapshot, **meta(1))
    redacted = o.OrderRedacted(
        type="order.redacted",
        order_id="O-1",
        data=o.RedactionData(groups=[o.DataGroup.CONTACT]),
        **meta(2),
    )
    board.apply_event(ORDERS, order_created.model_dump_json().encode())
    assert list(board.documents(ORDERS)) == [state_key("tenant-a", "O-1")]
    board.apply_event(ORDERS, redacted.model_dump_json().encode())
    assert board.documents(ORDERS) == {}


def test_what_is_not_a_message_of_the_contract_is_skipped() -> None:
    board = Board()
    assert board.apply_event(PURCHASE_ORDERS, b"not json") is None
    assert board.apply_state(PURCHASE_ORDERS, KEY, b'{"type": "something.else"}') is None
    assert board.skipped == 2


def test_state_keys_of_different_documents_never_meet() -> None:
    assert state_key("tenant-a", "PO-1") == "tenant-a/PO-1"
    assert state_key("a/b", "c") != state_key("a", "b/c")
