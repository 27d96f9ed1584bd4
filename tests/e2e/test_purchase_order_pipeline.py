"""Commands in on Kafka, decisions in Postgres, outcomes out on Kafka: the whole pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from contracts.purchase_orders import PURCHASE_ORDER_EVENT, PurchaseOrderRejection
from contracts.topics import PURCHASE_ORDERS
from service.settings import Settings
from tests.support import (
    WireProbe,
    assert_cloudevents,
    change_status,
    create,
    details,
    running_service,
)


@pytest.fixture(autouse=True)
def events_and_movements_are_cloudevents(probe: WireProbe) -> Iterator[None]:
    """After each test: every event and movement it read carries valid CloudEvents headers."""
    yield
    assert_cloudevents(probe, PURCHASE_ORDERS)


async def test_create_then_open_then_refuse_received(settings: Settings, probe: WireProbe) -> None:
    async with running_service(settings):
        created = await probe.send_and_wait(create("PO-1"))
        opened = await probe.send_and_wait(change_status("PO-1", "open"))
        refused = await probe.send_and_wait(change_status("PO-1", "received"))

    event = PURCHASE_ORDER_EVENT.validate_json(created.value)
    assert created.topic == probe.topics.events
    assert created.key == "PO-1"
    assert event.type == "purchase_order.created"
    assert event.version == 1
    assert event.data.status == "draft"
    assert [line.sku for line in event.data.products] == ["WIDGET-001"]

    status_changed = PURCHASE_ORDER_EVENT.validate_json(opened.value)
    assert status_changed.type == "purchase_order.status_changed"
    assert status_changed.version == 2
    assert (status_changed.data.from_status, status_changed.data.to_status) == ("draft", "open")

    rejection = PurchaseOrderRejection.model_validate_json(refused.value)
    assert refused.topic == probe.topics.rejections
    assert rejection.request_id == rejection.command_id
    assert [(e.error_type, e.error_code, e.field) for e in rejection.errors] == [
        ("validation", "invalid_status", "payload.status")
    ]
    assert rejection.errors[0].message.startswith("Cannot transition from 'open' to 'received'")


async def test_state_and_history_are_written_in_the_same_transaction_as_the_events(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-7"))
        await probe.send_and_wait(change_status("PO-7", "open"))
        await probe.send_and_wait(change_status("PO-7", "cancelled"))

    row = await db.fetchrow(
        "SELECT status, version FROM purchase_orders WHERE purchase_order_id = 'PO-7'"
    )
    assert dict(row) == {"status": "cancelled", "version": 3}
    history = await db.fetch(
        "SELECT version, event_type, event_id::text FROM purchase_order_history"
        " WHERE purchase_order_id = 'PO-7' ORDER BY version"
    )
    assert [(h["version"], h["event_type"]) for h in history] == [
        (1, "purchase_order.created"),
        (2, "purchase_order.status_changed"),
        (3, "purchase_order.status_changed"),
    ]
    published = {r.body["event_id"] for r in probe.on(probe.topics.events)}
    assert {h["event_id"] for h in history} == published


async def test_a_redelivered_command_has_one_outcome(settings: Settings, probe: WireProbe) -> None:
    first = create("PO-2")
    async with running_service(settings):
        await probe.send_and_wait(first)
        await probe.send(first)  # a faithful re-send, e.g. a producer retry
        await probe.send(first)
        marker = await probe.send_and_wait(change_status("PO-2", "open"))
    assert marker.body["version"] == 2, "the re-sends must not have created more versions"
    assert len(probe.outcomes(first["command_id"])) == 1


async def test_a_reused_command_id_with_another_payload_is_refused(
    settings: Settings, probe: WireProbe
) -> None:
    original = create("PO-3")
    reused = {**original, "payload": details(supplier_id="SOMEONE-ELSE")}
    async with running_service(settings):
        await probe.send_and_wait(original)
        await probe.send(reused)
        await probe.send(reused)  # the reuse itself is answered once
        await probe.send_and_wait(change_status("PO-3", "open"))
    outcomes = probe.outcomes(original["command_id"])
    assert [o.topic for o in outcomes] == [probe.topics.events, probe.topics.rejections]
    assert [e["error_code"] for e in outcomes[1].body["errors"]] == ["idempotency_key_reused"]


async def test_expected_version_mismatch_names_the_current_version(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-4"))
        stale = await probe.send_and_wait(change_status("PO-4", "open", expected_version=5))
        fresh = await probe.send_and_wait(change_status("PO-4", "open", expected_version=1))
    assert stale.topic == probe.topics.rejections
    [error] = stale.body["errors"]
    assert (error["error_code"], error["error_type"]) == ("version_conflict", "conflict")
    assert "current version is 1" in error["message"]
    assert fresh.topic == probe.topics.events
    assert fresh.body["version"] == 2


async def test_unknown_and_duplicate_documents(settings: Settings, probe: WireProbe) -> None:
    async with running_service(settings):
        missing = await probe.send_and_wait(change_status("PO-404", "open"))
        await probe.send_and_wait(create("PO-5"))
        again = await probe.send_and_wait(create("PO-5"))
        other_tenant = await probe.send_and_wait(change_status("PO-5", "open", tenant_id="b"))
    assert [e["error_code"] for e in missing.body["errors"]] == ["not_found"]
    assert [e["error_code"] for e in again.body["errors"]] == ["already_exists"]
    assert [e["error_code"] for e in other_tenant.body["errors"]] == ["not_found"]
