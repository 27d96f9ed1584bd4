"""Every event and every inventory movement is a CloudEvent in binary content mode (CloudEvents
1.0, Kafka protocol binding), as the CloudEvents SDK reads it: the messages are built by the
real builders, through the processor and the kernel, on the in-memory store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any
from uuid import UUID

from contracts import purchase_orders as wire
from contracts.headers import (
    CLOUDEVENTS,
    CLOUDEVENTS_MOVEMENT_SOURCE,
    EVENT_TYPE,
    cloudevents_source,
)
from contracts.inventory import MovementSource
from contracts.topics import PURCHASE_ORDERS
from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore
from service.adapters.random_ids import random_uuid
from service.app.family import Family
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.messages import WireEvent, event_message, movement_message
from service.app.orders.family import order_family
from service.app.ports import OutboxMessage, Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from service.domain.stock import Bucket, Movement
from tests.support import (
    assert_cloudevent,
    change_status,
    create,
    create_order,
    order_status,
    redact_customer,
)

MOVEMENTS = "u.inventory.movements"
offsets = count()


async def published(family: Family[Any], *commands: tuple[str, dict[str, Any]]) -> MemoryStore:
    """The store after the commands (key, body) were processed one batch each."""
    store = MemoryStore()
    processor = CommandProcessor(
        store,
        DocumentDecider(family, MOVEMENTS),
        max_command_bytes=65536,
        signer=Signer(new_key(), "u"),
    )
    for key, body in commands:
        message = IncomingMessage(
            "u.cmds", 0, next(offsets), 1, key.encode(), json.dumps(body).encode()
        )
        assert await processor.process_batch([message]) == [Outcome.ACCEPTED], body["type"]
    return store


def unique_headers(message: OutboxMessage) -> dict[str, bytes]:
    names = [name for name, _ in message.headers]
    assert len(names) == len(set(names)), f"a header twice: {names}"
    return dict(message.headers)


def check(store: MemoryStore, family: Family[Any]) -> tuple[list[str], int]:
    """Every event and movement of the store checked; the event types and the movement count."""
    events = [m for m in store.data.outbox if m.topic == family.topics.events]
    movements = [m for m in store.data.outbox if m.topic == MOVEMENTS]
    types = []
    for message in events:
        headers = unique_headers(message)
        event = assert_cloudevent(
            headers, message.key, message.value, cloudevents_source(family.name)
        )
        assert headers[EVENT_TYPE] == event.get_type().encode(), "event_type stays"
        types.append(event.get_type())
    for message in movements:
        headers = unique_headers(message)
        assert_cloudevent(headers, message.key, message.value, CLOUDEVENTS_MOVEMENT_SOURCE)
        assert EVENT_TYPE not in headers
    return types, len(movements)


async def test_purchase_order_events_and_their_movements_are_cloudevents() -> None:
    family = purchase_order_family("u.")
    store = await published(
        family, ("PO-1", create("PO-1")), ("PO-1", change_status("PO-1", "open"))
    )
    types, movements = check(store, family)
    assert types == ["purchase_order.created", "purchase_order.status_changed"]
    assert movements == 1, "opening it expects the stock as incoming"


async def test_order_events_movements_and_an_erasure_receipt_are_cloudevents() -> None:
    family = order_family("u.")
    store = await published(
        family,
        ("O-1", create_order("O-1")),
        ("O-1", order_status("O-1", "ready")),
        ("CUST-1", redact_customer("CUST-1")),
    )
    types, movements = check(store, family)
    assert types == [
        "order.created",
        "order.status_changed",
        "order.redaction_scheduled",
        "customer.redacted",
    ]
    assert movements == 2, "a reservation per line once ready"
    [receipt] = [m for m in store.data.outbox if b"customer.redacted" in (m.value or b"")]
    assert dict(receipt.headers)["ce_subject"] == b"CUST-1", "the customer is its document"


OCCURRED = datetime(2025, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
EVENT_ID = UUID("00000000-0000-4000-8000-000000000001")


def status_changed(occurred_at: datetime) -> wire.PurchaseOrderStatusChanged:
    return wire.PurchaseOrderStatusChanged(
        type="purchase_order.status_changed",
        event_id=EVENT_ID,
        tenant_id="tenant-a",
        purchase_order_id="PO-7",
        version=2,
        command_id=UUID("00000000-0000-4000-8000-000000000002"),
        occurred_at=occurred_at,
        data=wire.StatusChangeData(from_status="draft", to_status="open"),
    )


def test_an_event_carries_exactly_these_headers_in_this_order() -> None:
    message = event_message(
        purchase_order_family("u."), "PO-7", WireEvent.of(status_changed(OCCURRED))
    )
    assert (message.topic, message.key) == ("u.purchase-orders.events", b"PO-7")
    assert message.headers == (
        ("event_type", b"purchase_order.status_changed"),
        ("ce_specversion", b"1.0"),
        ("ce_id", b"00000000-0000-4000-8000-000000000001"),
        ("ce_source", b"/order-lifecycle-service/purchase-orders"),
        ("ce_type", b"purchase_order.status_changed"),
        ("ce_time", b"2025-03-01T12:30:05.250000Z"),
        ("ce_subject", b"PO-7"),
        ("content-type", b"application/json"),
    )
    assert [name for name, _ in message.headers[1:]] == list(CLOUDEVENTS)


def test_a_movement_carries_its_id_the_inventory_source_and_its_stock_item() -> None:
    source = MovementSource(type="order", id="O-3", version=2, event_id=EVENT_ID)
    movement = Movement("WH-1", "MUG-RED", Bucket.RESERVED, 2)
    message = movement_message(
        MOVEMENTS, "tenant-a", movement, source.model_dump(), "order.x", OCCURRED
    )
    body = json.loads(message.value or b"")
    assert message.key == b"tenant-a/WH-1/MUG-RED"
    assert dict(message.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": body["movement_id"].encode(),
        "ce_source": b"/order-lifecycle-service/inventory",
        "ce_type": b"inventory.movement",
        "ce_time": b"2025-03-01T12:30:05.250000Z",
        "ce_subject": b"WH-1/MUG-RED",
        "content-type": b"application/json",
    }
    assert_cloudevent(
        dict(message.headers), message.key, message.value, CLOUDEVENTS_MOVEMENT_SOURCE
    )


def test_a_time_with_an_offset_keeps_it_and_matches_the_body() -> None:
    moment = OCCURRED.astimezone(timezone(timedelta(hours=2)))
    message = event_message(purchase_order_family(), "PO-7", WireEvent.of(status_changed(moment)))
    headers = dict(message.headers)
    assert headers["ce_time"] == b"2025-03-01T14:30:05.250000+02:00"
    event = assert_cloudevent(
        headers, message.key, message.value, cloudevents_source(PURCHASE_ORDERS)
    )
    assert event.get_time() == OCCURRED


async def test_every_event_id_an_erasure_publishes_is_made_by_the_decider() -> None:
    """The receipt's id too: one maker for every event id (the runtime passes asyncpg's UUIDs)."""
    made: list[UUID] = []

    def counted() -> UUID:
        made.append(random_uuid())
        return made[-1]

    family = order_family("u.")
    store = MemoryStore()
    processor = CommandProcessor(
        store,
        DocumentDecider(family, MOVEMENTS, counted),
        max_command_bytes=65536,
        signer=Signer(new_key(), "u"),
    )
    for key, body in [("O-1", create_order("O-1")), ("CUST-1", redact_customer("CUST-1"))]:
        message = IncomingMessage(
            "u.cmds", 0, next(offsets), 1, key.encode(), json.dumps(body).encode()
        )
        assert await processor.process_batch([message]) == [Outcome.ACCEPTED]
    events = [m for m in store.data.outbox if m.topic == family.topics.events]
    ids = [UUID(json.loads(m.value or b"{}")["event_id"]) for m in events]
    assert [json.loads(m.value or b"{}")["type"] for m in events][-1] == "customer.redacted"
    assert ids == made
