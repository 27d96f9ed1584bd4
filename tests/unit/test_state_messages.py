"""What the state topics get, at processor level on the in-memory store: one state per accepted
version, right after its event; nothing for refusals and dry runs; a tombstone (null value)
after a deletion or an erasure, and nothing for that document after it."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import count
from typing import Any
from uuid import UUID

from contract_tools.conformance import assert_conforms
from contracts.state import OrderState, PurchaseOrderState
from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore
from service.app.family import Family
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.ports import OutboxMessage, Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from tests.support import (
    address,
    change_status,
    command,
    create,
    create_order,
    delete,
    delete_order,
    details,
    order_command,
    order_status,
    receipt,
    redact_customer,
)
from tests.transfers.family import transfer_family

PURCHASE_ORDERS = purchase_order_family("u.")
ORDERS = order_family("u.")
SIGNER = Signer(new_key(), "u")
offsets = count()


def message(body: dict[str, Any]) -> IncomingMessage:
    key = str(body.get("purchase_order_id") or body.get("order_id") or body["customer_id"])
    return IncomingMessage("u.cmds", 0, next(offsets), 1, key.encode(), json.dumps(body).encode())


async def process(
    store: MemoryStore, family: Family[Any], *bodies: dict[str, Any]
) -> list[Outcome]:
    processor = CommandProcessor(
        store, DocumentDecider(family, "u.movements"), max_command_bytes=65536, signer=SIGNER
    )
    return await processor.process_batch([message(body) for body in bodies])


def on(store: MemoryStore, topic: str) -> list[OutboxMessage]:
    return [m for m in store.data.outbox if m.topic == topic]


def states(store: MemoryStore, family: Family[Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """(key, body) of every state message queued, in order; body None for a tombstone."""
    return [
        (m.key.decode(), None if m.value is None else json.loads(m.value))
        for m in on(store, family.topics.state)
    ]


def redact_order(order_id: str, *groups: str) -> dict[str, Any]:
    return order_command("order.redact", order_id, {"groups": list(groups)} if groups else {})


async def test_each_accepted_version_is_followed_by_its_state_and_refusals_add_none() -> None:
    store = MemoryStore()
    outcomes = await process(
        store,
        PURCHASE_ORDERS,
        create("PO-1"),
        change_status("PO-1", "open"),
        change_status("PO-1", "closed"),  # open -> closed is not allowed: no state
        receipt("PO-1", "RCV-1", **{"WIDGET-001": 100}),  # receiving, receipt, received
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    topics = PURCHASE_ORDERS.topics
    relevant = [m for m in store.data.outbox if m.topic in (topics.events, topics.state)]
    # Event, then its state, version after version: the relay keeps this order per key.
    assert [m.topic for m in relevant] == [topics.events, topics.state] * 5
    for event_message, state_message in zip(relevant[::2], relevant[1::2], strict=True):
        assert event_message.value is not None
        assert state_message.value is not None
        event = json.loads(event_message.value)
        state = PurchaseOrderState.model_validate_json(state_message.value)
        assert state_message.key == b"tenant-a/PO-1"
        assert (state.version, state.event_id, state.event_type) == (
            event["version"],
            UUID(event["event_id"]),
            event["type"],
        )
        assert state.purchase_order_id == "PO-1"
        assert state.updated_at == datetime.fromisoformat(event["occurred_at"])
        assert_conforms(state_message.value, topic=topics.state)
    last = PurchaseOrderState.model_validate_json(relevant[-1].value or b"")
    stored = store.data.documents[PURCHASE_ORDERS.name][("tenant-a", "PO-1")]
    assert (
        (last.version, last.snapshot.status) == (stored.version, stored.status) == (5, "received")
    )
    [created] = [json.loads(m.value or b"") for m in on(store, topics.events)][:1]
    assert json.loads(relevant[1].value or b"")["snapshot"] == created["data"]


async def test_a_deletion_is_followed_by_a_tombstone_and_then_nothing() -> None:
    store = MemoryStore()
    await process(
        store, PURCHASE_ORDERS, create("PO-1"), delete("PO-1"), change_status("PO-1", "open")
    )
    assert [(key, body and body["version"]) for key, body in states(store, PURCHASE_ORDERS)] == [
        ("tenant-a/PO-1", 1),
        ("tenant-a/PO-1", None),
    ]
    assert_conforms(None, topic=PURCHASE_ORDERS.topics.state)


async def test_a_dry_run_queues_no_state_and_its_preview_lists_no_state_as_a_movement() -> None:
    store = MemoryStore()
    await process(store, PURCHASE_ORDERS, create("PO-1"), create("PO-2"))
    queued = len(store.data.outbox)
    dry_open = {**change_status("PO-1", "open"), "dry_run": True}
    dry_delete = {**delete("PO-2"), "dry_run": True}
    assert await process(store, PURCHASE_ORDERS, dry_open, dry_delete) == [Outcome.PREVIEWED] * 2
    added = store.data.outbox[queued:]
    assert [m.topic for m in added] == [PURCHASE_ORDERS.topics.previews] * 2
    opened, deleted = (json.loads(m.value or b"") for m in added)
    # Opening moves stock (+ordered to incoming); the would-be state is not a movement.
    assert [m["bucket"] for m in opened["movements"]] == ["incoming"]
    assert [e["type"] for e in opened["events"]] == ["purchase_order.status_changed"]
    assert (deleted["would_accept"], deleted["movements"]) == (True, [])


async def test_an_order_state_carries_no_personal_data() -> None:
    store = MemoryStore()
    canaries = {"name": "Canary Name 7f3a", "city": "Canaryville", "email": "canary@7f3a.example"}
    details = {"shipping_address": address(**canaries), "billing_address": address(**canaries)}
    await process(store, ORDERS, create_order("O-1", details=details))
    [(key, body)] = states(store, ORDERS)
    assert key == "tenant-a/O-1"
    assert body is not None
    state = OrderState.model_validate(body)
    assert (state.order_id, state.version, state.snapshot.status) == ("O-1", 1, "placed")
    raw = on(store, ORDERS.topics.state)[0].value or b""
    assert not [value for value in canaries.values() if value.encode() in raw]


async def test_an_erasure_is_followed_by_a_tombstone_and_no_state_after_it() -> None:
    store = MemoryStore()
    await process(
        store,
        ORDERS,
        create_order("O-1"),
        order_status("O-1", "ready"),
        order_status("O-1", "fulfilled"),
        order_status("O-1", "sent"),
        redact_order("O-1", "contact"),  # not being fulfilled any more: erased now
        order_status("O-1", "delivered"),  # a later change: no state, no second tombstone
    )
    assert [body and body["version"] for _, body in states(store, ORDERS)] == [1, 2, 3, 4, None]
    assert [json.loads(m.value or b"")["type"] for m in on(store, ORDERS.topics.events)][-2:] == [
        "order.redacted",
        "order.status_changed",
    ]


async def test_a_scheduled_redaction_keeps_the_state_until_it_runs() -> None:
    store = MemoryStore()
    await process(store, ORDERS, create_order("O-1"), redact_order("O-1"))
    # Still being fulfilled: the redaction waits, and so does the tombstone.
    assert [body and body["version"] for _, body in states(store, ORDERS)] == [1, 2]
    await process(store, ORDERS, order_status("O-1", "cancelled", "customer"))
    # The cancel (v3) is shown, then the redaction runs with it (v4): a tombstone.
    assert [body and body["version"] for _, body in states(store, ORDERS)] == [1, 2, 3, None]


async def test_a_customer_erasure_tombstones_each_order_as_its_data_goes() -> None:
    store = MemoryStore()
    await process(
        store,
        ORDERS,
        create_order("O-1"),
        create_order("O-2"),
        create_order("O-3", details={"customer_id": "CUST-2"}),
        order_status("O-1", "cancelled", "customer"),
    )
    before = len(states(store, ORDERS))
    assert await process(store, ORDERS, redact_customer("CUST-1")) == [Outcome.ACCEPTED]
    # O-1 (cancelled) is erased now; O-2 (placed) is scheduled, so it is still shown.
    after = states(store, ORDERS)[before:]
    assert [(key, body and body["event_type"]) for key, body in after] == [
        ("tenant-a/O-1", None),
        ("tenant-a/O-2", "order.redaction_scheduled"),
    ]
    await process(store, ORDERS, order_status("O-2", "cancelled", "customer"), delete_order("O-3"))
    assert [(key, body and body["event_type"]) for key, body in states(store, ORDERS)[-3:]] == [
        ("tenant-a/O-2", "order.status_changed"),
        ("tenant-a/O-2", None),
        ("tenant-a/O-3", None),
    ]


def test_a_family_that_supplies_no_state_still_has_its_compacted_topic() -> None:
    transfers = transfer_family("p.")
    assert transfers.rules.state is None
    assert transfers.topics.state == "p.transfers.state"
    assert transfers.topics.state in transfers.topics.all()
    assert transfers.topics.compacted() == (transfers.topics.state,)


async def test_what_is_written_is_exactly_each_familys_state_model() -> None:
    # The kernel writes a state around the snapshot JSON it already has for history; it must be
    # byte for byte what the contract's model writes, non-ASCII text and decimals included.
    store = MemoryStore()
    payload = details(note_to_supplier="Grüße, «Lieferung» \u2603", reference_number='R"1')
    await process(store, PURCHASE_ORDERS, command("purchase_order.create", "PO-1", payload))
    await process(store, ORDERS, create_order("O-1"))
    for family, model in ((PURCHASE_ORDERS, PurchaseOrderState), (ORDERS, OrderState)):
        [written] = on(store, family.topics.state)
        assert written.value is not None
        again = model.model_validate_json(written.value).model_dump_json().encode()
        assert written.value == again
        assert family.rules.state is not None
        assert family.rules.state.model is model
