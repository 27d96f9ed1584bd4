"""Readers built against one version of the contract read what the next one publishes.

The next version is simulated from real messages of this one: a new optional field, a new enum
value (a purchase order `on_hold`), a new event type (`purchase_order.archived`). The readers in
contracts.readers and the contract kit loaded from the released contract (0.1.0) must take them
(known messages with what they know, the rest reported as unknown), strict mode must still
refuse them, and messages no version writes must still fail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from contract_tools.conformance import STRICT, TOLERANT, Contract, Unknown, name_of
from contracts import purchase_orders as po
from contracts.common import EventActor
from contracts.inventory import InventoryMovement, MovementSource
from contracts.readers import (
    UnknownEvent,
    UnknownValue,
    UnreadableMessage,
    Unrecognised,
    read,
    read_event,
    read_movement,
    read_rejection,
    read_reply,
)
from contracts.replies import CommandReply, EventReceipt, ReplyOutcome, request_digest

RELEASED = Contract.from_directory(Path(__file__).parents[2] / "contracts" / "released")
SHIPPED = Contract.shipped()

EVENT_ID = UUID("00000000-0000-4000-8000-000000000001")
COMMAND_ID = UUID("00000000-0000-4000-8000-000000000002")
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ENVELOPE: dict[str, Any] = {
    "event_id": EVENT_ID,
    "tenant_id": "tenant-a",
    "command_id": COMMAND_ID,
    "occurred_at": AT,
    "purchase_order_id": "PO-1",
    "actor": EventActor(type="user", id="u-1", verified=True),
}


def created() -> po.PurchaseOrderCreated:
    line = po.ProductLine(sku="MUG-RED", quantity=3, cost=Decimal("4.5000"))
    snapshot = po.PurchaseOrderSnapshot(
        supplier_id="SUP-1",
        warehouse_id="WH-1",
        products=[line],
        status=po.PurchaseOrderStatus.DRAFT,
    )
    return po.PurchaseOrderCreated(
        **ENVELOPE, version=1, type="purchase_order.created", data=snapshot
    )


def status_changed() -> po.PurchaseOrderStatusChanged:
    change = po.StatusChangeData(
        from_status=po.PurchaseOrderStatus.DRAFT, to_status=po.PurchaseOrderStatus.OPEN
    )
    return po.PurchaseOrderStatusChanged(
        **ENVELOPE, version=2, type="purchase_order.status_changed", data=change
    )


def movement() -> InventoryMovement:
    return InventoryMovement(
        movement_id=UUID("00000000-0000-4000-8000-000000000003"),
        tenant_id="tenant-a",
        warehouse_id="WH-1",
        sku="MUG-RED",
        bucket="incoming",
        quantity=3,
        reason="purchase_order.status_changed",
        source=MovementSource(type="purchase_order", id="PO-1", version=2, event_id=EVENT_ID),
        occurred_at=AT,
    )


def reply() -> CommandReply:
    receipt = EventReceipt(
        event_id=EVENT_ID, type="purchase_order.status_changed", version=2, document_id="PO-1"
    )
    return CommandReply(
        command_id=COMMAND_ID,
        tenant_id="tenant-a",
        type="purchase_order.change_status",
        document_id="PO-1",
        outcome=ReplyOutcome.ACCEPTED,
        accepted=True,
        request_digest=request_digest(b"PO-1", b"{}"),
        events=[receipt],
        replied_at=AT,
    )


def wire(message: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.model_dump_json())
    return body


# --- The next version's messages --------------------------------------------------------------


def created_with_new_fields() -> dict[str, Any]:
    body = wire(created())
    body["priority"] = "high"
    body["data"]["products"][0]["carbon_kg"] = 1.25
    return body


def on_hold() -> dict[str, Any]:
    body = wire(status_changed())
    body["data"]["to_status"] = "on_hold"
    return body


def archived() -> dict[str, Any]:
    body = wire(status_changed())
    return body | {"type": "purchase_order.archived", "version": 3, "data": {"archive": "cold"}}


def movement_with_a_new_bucket() -> dict[str, Any]:
    return wire(movement()) | {"bucket": "in_transit", "carrier": "DHL"}


def reply_with_new_fields() -> dict[str, Any]:
    return wire(reply()) | {"queued_behind": 3}


def reply_with_a_new_outcome() -> dict[str, Any]:
    return wire(reply()) | {"outcome": "queued", "accepted": False, "events": []}


# --- Readers ----------------------------------------------------------------------------------


def test_a_known_event_with_new_fields_reads_as_itself() -> None:
    as_text = json.dumps(created_with_new_fields()).encode()
    assert read_event(as_text) == created()
    assert read_event(created_with_new_fields()) == created()


def test_a_new_enum_value_in_a_known_event_is_reported_with_its_path() -> None:
    event = read_event(json.dumps(on_hold()))
    assert isinstance(event, UnknownEvent)
    assert event.known_type
    assert event.unknown_values == (UnknownValue("data.to_status", "on_hold"),)
    assert (event.type, event.version, event.document_id) == (
        "purchase_order.status_changed",
        2,
        "PO-1",
    )
    assert (event.event_id, event.command_id, event.tenant_id) == (EVENT_ID, COMMAND_ID, "tenant-a")
    assert event.raw == on_hold()


def test_a_new_event_type_is_an_unknown_event_with_its_envelope() -> None:
    event = read_event(json.dumps(archived()).encode())
    assert isinstance(event, UnknownEvent)
    assert not event.known_type
    assert event.unknown_values == (UnknownValue("type", "purchase_order.archived"),)
    assert (event.type, event.event_id, event.tenant_id, event.version) == (
        "purchase_order.archived",
        EVENT_ID,
        "tenant-a",
        3,
    )
    assert (event.command_id, event.document_id) == (COMMAND_ID, "PO-1")
    assert event.raw["data"] == {"archive": "cold"}


def test_an_event_of_a_family_this_version_has_never_heard_of_is_unknown_too() -> None:
    body = wire(status_changed()) | {"type": "invoice.paid", "invoice_id": "INV-1"}
    event = read_event(body)
    assert isinstance(event, UnknownEvent)
    assert (event.type, event.document_id, event.event_id) == ("invoice.paid", "INV-1", EVENT_ID)


def test_movements_and_replies_read_tolerantly() -> None:
    with_new_field = wire(movement()) | {"carrier": "DHL"}
    assert read_movement(json.dumps(with_new_field)) == movement()
    unknown_bucket = read_movement(movement_with_a_new_bucket())
    assert isinstance(unknown_bucket, Unrecognised)
    assert unknown_bucket.unknown_values == (UnknownValue("bucket", "in_transit"),)

    assert read_reply(json.dumps(reply_with_new_fields()).encode()) == reply()
    queued = read_reply(reply_with_a_new_outcome())
    assert isinstance(queued, Unrecognised)
    assert queued.type == "purchase_order.change_status"
    assert queued.unknown_values == (UnknownValue("outcome", "queued"),)


def test_a_rejection_with_a_new_error_code_is_unrecognised_not_an_exception() -> None:
    rejection = {
        "request_id": str(COMMAND_ID),
        "command_id": str(COMMAND_ID),
        "type": "purchase_order.create",
        "tenant_id": "tenant-a",
        "purchase_order_id": "PO-1",
        "rejected_at": "2026-11-23T10:00:00Z",
        "errors": [{"error_type": "conflict", "error_code": "budget_exceeded", "message": "no"}],
        "budget": 5,
    }
    found = read_rejection(json.dumps(rejection), "purchase_order")
    assert isinstance(found, Unrecognised)
    assert found.unknown_values == (UnknownValue("errors.0.error_code", "budget_exceeded"),)
    rejection["errors"] = [{"error_type": "conflict", "error_code": "not_found", "message": "no"}]
    assert isinstance(read_rejection(rejection, "purchase_order"), po.PurchaseOrderRejection)


def test_the_generic_reader_takes_any_model_or_type_adapter() -> None:
    assert (
        read(po.PurchaseOrderStatusChanged, wire(status_changed()) | {"x": 1}) == status_changed()
    )
    found = read(po.PURCHASE_ORDER_EVENT, json.dumps(archived()))
    assert isinstance(found, Unrecognised)
    assert found.unknown_values == (UnknownValue("type", "purchase_order.archived"),)


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        (lambda b: b["data"].pop("from_status"), "data.from_status: Field required"),
        (lambda b: b.update(version="two"), "version: Input should be a valid integer"),
        (lambda b: b.update(event_id="not-a-uuid"), "event_id: Input should be a valid UUID"),
        (lambda b: b.pop("tenant_id"), "tenant_id: Field required"),
    ],
    ids=["a required field missing", "a wrong type", "a malformed id", "no tenant"],
)
def test_what_no_version_writes_still_fails_naming_the_field(broken: Any, named: str) -> None:
    body = on_hold()  # an unknown value does not excuse a real problem beside it
    broken(body)
    with pytest.raises(UnreadableMessage, match=named):
        read_event(json.dumps(body))
    with pytest.raises(UnreadableMessage, match=named):
        read_event(body)


def test_text_that_is_not_a_json_object_fails() -> None:
    with pytest.raises(UnreadableMessage, match="not JSON"):
        read_event(b'{"type": "purchase_order.created",')
    with pytest.raises(UnreadableMessage, match="a JSON object is required"):
        read_movement("[1, 2]")
    with pytest.raises(UnreadableMessage, match="type: a string"):
        read_event({"event_id": str(EVENT_ID)})


def test_the_writers_stay_strict() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        po.PurchaseOrderCreated.model_validate(created_with_new_fields())
    with pytest.raises(ValueError, match="Input should be 'draft'"):
        po.PURCHASE_ORDER_EVENT.validate_python(on_hold())
    shipped = SHIPPED.schema("purchase_order.status_changed")
    assert shipped["additionalProperties"] is False
    assert "on_hold" not in shipped["$defs"]["PurchaseOrderStatus"]["enum"]


# --- The kit of the released contract, reading the next version -------------------------------


def test_the_released_kit_takes_the_next_versions_events_listing_the_unknowns() -> None:
    verdict = RELEASED.check(json.dumps(created_with_new_fields()).encode())
    assert verdict.conforms, verdict.problems
    assert verdict.mode is TOLERANT
    assert {str(unknown) for unknown in verdict.unknowns} == {
        "priority: unknown field",
        "actor.verified: unknown field",  # added since 0.1.0: the current service sends it
        "data.products.0.carbon_kg: unknown field",
    }

    verdict = RELEASED.check(on_hold())
    assert verdict.conforms, verdict.problems
    assert Unknown("data.to_status", "value", "on_hold") in verdict.unknowns

    verdict = RELEASED.check(archived())
    assert verdict.conforms, verdict.problems
    # The envelope every event shares is still checked, the actor in it included.
    assert verdict.unknowns == (
        Unknown("(message)", "message type", "purchase_order.archived"),
        Unknown("actor.verified", "field", True),
    )


def test_the_released_kit_takes_movements_and_the_current_kit_replies() -> None:
    topic = "acme.inventory.movements"
    verdict = RELEASED.check(movement_with_a_new_bucket(), topic=topic)
    assert verdict.conforms, verdict.problems
    assert Unknown("bucket", "value", "in_transit") in verdict.unknowns
    for body in (reply_with_new_fields(), reply_with_a_new_outcome()):
        verdict = SHIPPED.check(body, topic="replies.tenant-a")
        assert (verdict.name, verdict.conforms) == ("command.reply", True), verdict.problems
        assert verdict.unknowns


def test_strict_mode_refuses_the_same_messages() -> None:
    for body in (created_with_new_fields(), on_hold(), archived()):
        assert RELEASED.check(body, mode=STRICT).problems
    assert RELEASED.problems(movement_with_a_new_bucket(), topic="inventory.movements", mode=STRICT)
    assert SHIPPED.problems(reply_with_a_new_outcome(), "command.reply", mode=STRICT)
    assert RELEASED.problems(archived(), mode=STRICT) == [
        "type: no message of the contract is called 'purchase_order.archived'"
    ]


def test_what_the_service_publishes_now_conforms_strictly_to_the_shipped_schemas() -> None:
    for message, name in (
        (created(), None),
        (status_changed(), None),
        (movement(), None),
        (reply(), "command.reply"),
    ):
        verdict = SHIPPED.check(message.model_dump_json(), name, mode=STRICT)
        assert verdict.conforms, verdict.problems


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (lambda b: b["data"].pop("from_status"), "data: 'from_status' is a required property"),
        (lambda b: b.update(version="two"), "version: 'two' is not of type 'integer'"),
        (lambda b: b.update(event_id="not-a-uuid"), "event_id: 'not-a-uuid' is not a 'uuid'"),
        (lambda b: b.update(occurred_at="2026-11-23"), "occurred_at: '2026-11-23' is not a"),
    ],
    ids=["a required field missing", "a wrong type", "a malformed id", "a date without time"],
)
def test_invalid_messages_still_fail_in_reader_mode(broken: Any, problem: str) -> None:
    body = on_hold()
    broken(body)
    verdict = RELEASED.check(body)
    assert verdict.mode is TOLERANT
    assert any(found.startswith(problem) for found in verdict.problems), verdict.problems


def test_an_unknown_event_type_still_has_its_envelope_checked() -> None:
    body = archived()
    body.pop("tenant_id")
    body["event_id"] = "not-a-uuid"
    body["version"] = 0
    assert RELEASED.problems(body) == [
        "(message): 'tenant_id' is a required property",
        "event_id: 'not-a-uuid' is not a 'uuid'",
        "version: 0 is less than the minimum of 1",
    ]


def test_commands_are_read_strictly_unless_asked_otherwise() -> None:
    command = {
        "type": "purchase_order.change_status",
        "command_id": str(COMMAND_ID),
        "tenant_id": "tenant-a",
        "purchase_order_id": "PO-1",
        "payload": {"status": "open"},
    }
    assert SHIPPED.check(command).conforms
    with_a_new_field = command | {"priority": "high"}
    verdict = SHIPPED.check(with_a_new_field)
    assert verdict.mode is STRICT
    assert verdict.problems == (
        "(message): Additional properties are not allowed ('priority' was unexpected)",
    )
    assert SHIPPED.check(with_a_new_field, mode=TOLERANT).conforms


def test_topics_name_replies_and_states() -> None:
    assert name_of({}, "replies.tenant-a") == "command.reply"
    assert name_of({}, "replies.tenant-a.orders.rejections") == "command.reply"
    assert name_of({}, "acme.orders.state") == "order.state"
    assert name_of({}, "purchase-orders.state") == "purchase_order.state"
    assert name_of({"type": "order.created"}, "acme.orders.events") == "order.created"


def test_a_tombstone_conforms_only_on_a_state_topic() -> None:
    assert SHIPPED.check(None, topic="purchase-orders.state").conforms
    assert not SHIPPED.check(None, topic="purchase-orders.events").conforms
