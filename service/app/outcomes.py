"""Turns decisions into the messages that leave the service: events, movements, rejections,
dead letters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from contracts import purchase_orders as wire
from contracts.common import ErrorDetail
from contracts.inventory import InventoryMovement, MovementSource, movement_key
from contracts.topics import DocumentTopics
from service.app.incoming import IncomingMessage
from service.app.parse import Identity
from service.app.ports import HistoryEntry, OutboxMessage
from service.app.translate import (
    invoice_to_wire,
    receipt_to_wire,
    shipping_details_to_wire,
    snapshot_to_wire,
)
from service.domain import purchase_orders as po
from service.domain.problems import Problem
from service.domain.purchase_orders.stock import Movement, movements

DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_SOURCE = "x-dead-letter-source"


@dataclass(frozen=True)
class AcceptedOutput:
    messages: list[OutboxMessage]
    history: list[HistoryEntry]
    stock_keys: list[str]
    """The stock items moved, so their rows can be queued in commit order per item."""


def rejection_message(
    topics: DocumentTopics,
    identity: Identity,
    command_id: UUID,
    problems: Sequence[Problem],
    rejected_at: datetime,
) -> OutboxMessage:
    rejection = wire.PurchaseOrderRejection(
        request_id=command_id,
        command_id=command_id,
        type=identity.type,
        tenant_id=identity.tenant_id,
        purchase_order_id=identity.document_id,
        rejected_at=rejected_at,
        errors=[
            ErrorDetail(
                error_type=p.error_type.value,
                error_code=p.code.value,
                message=p.message,
                field=p.field,
            )
            for p in problems
        ],
    )
    return OutboxMessage(
        topics.rejections,
        identity.document_id or str(command_id),
        rejection.model_dump_json().encode(),
    )


def dead_letter_message(
    topics: DocumentTopics, message: IncomingMessage, reason: str
) -> OutboxMessage:
    headers = (
        *message.headers,
        (DEAD_LETTER_REASON, reason.encode()[:4000]),
        (DEAD_LETTER_SOURCE, message.source.encode()),
    )
    key = message.key.decode("utf-8", "replace") if message.key is not None else ""
    return OutboxMessage(topics.dead_letters, key, message.value or b"", headers)


def accepted_messages(
    topics: DocumentTopics,
    movements_topic: str,
    command_id: UUID,
    transitions: Sequence[po.Transition],
    occurred_at: datetime,
    new_event_id: Callable[[], UUID] = uuid4,
) -> AcceptedOutput:
    """Per transition: its event, a history entry while the order lives, its stock movements."""
    output = AcceptedOutput([], [], [])
    for transition in transitions:
        after = transition.after
        event_id = new_event_id()
        event = _wire_event(
            transition,
            event_id=event_id,
            tenant_id=after.tenant_id,
            purchase_order_id=after.purchase_order_id,
            version=after.version,
            command_id=command_id,
            occurred_at=occurred_at,
        )
        output.messages.append(
            OutboxMessage(
                topics.events,
                after.purchase_order_id,
                event.model_dump_json().encode(),
                (("event_type", event.type.encode()),),
            )
        )
        if isinstance(after, po.PurchaseOrder):
            snapshot = snapshot_to_wire(after).model_dump_json().encode()
            output.history.append(
                HistoryEntry(after.version, command_id, event_id, event.type, snapshot)
            )
        for movement in movements(transition.before, after):
            key = movement_key(after.tenant_id, movement.warehouse_id, movement.sku)
            output.stock_keys.append(key)
            output.messages.append(
                _movement_message(movements_topic, key, movement, event, event_id, occurred_at)
            )
    return output


def _movement_message(
    topic: str,
    key: str,
    movement: Movement,
    event: wire.PurchaseOrderEventMessage,
    event_id: UUID,
    occurred_at: datetime,
) -> OutboxMessage:
    body = InventoryMovement(
        # Derived from the event, so a movement keeps its id however often it is published.
        movement_id=uuid5(event_id, f"{movement.bucket}/{movement.warehouse_id}/{movement.sku}"),
        tenant_id=event.tenant_id,
        warehouse_id=movement.warehouse_id,
        sku=movement.sku,
        bucket=movement.bucket.value,
        quantity=movement.quantity,
        reason=event.type,
        source=MovementSource(
            type="purchase_order",
            id=event.purchase_order_id,
            version=event.version,
            event_id=event_id,
        ),
        occurred_at=occurred_at,
    )
    return OutboxMessage(topic, key, body.model_dump_json().encode())


def _wire_event(transition: po.Transition, **metadata: Any) -> wire.PurchaseOrderEventMessage:
    after = transition.after
    match transition.event:
        case po.PurchaseOrderCreated():
            assert isinstance(after, po.PurchaseOrder)
            return wire.PurchaseOrderCreated(
                type="purchase_order.created", data=snapshot_to_wire(after), **metadata
            )
        case po.PurchaseOrderUpdated():
            assert isinstance(after, po.PurchaseOrder)
            return wire.PurchaseOrderUpdated(
                type="purchase_order.updated", data=snapshot_to_wire(after), **metadata
            )
        case po.ShippingDetailsUpdated(changes=changes):
            assert isinstance(after, po.PurchaseOrder)
            change = wire.ShippingDetailsChange(
                changed_fields=[name for name, _ in changes],
                shipping_details=shipping_details_to_wire(after.details),
            )
            return wire.PurchaseOrderShippingDetailsUpdated(
                type="purchase_order.shipping_details_updated", data=change, **metadata
            )
        case po.PurchaseOrderStatusChanged(from_status=old, to_status=new, reason=reason):
            data = wire.StatusChangeData(from_status=old, to_status=new, reason=reason)
            return wire.PurchaseOrderStatusChanged(
                type="purchase_order.status_changed", data=data, **metadata
            )
        case po.ReceiptRecorded(receipt=receipt):
            assert isinstance(after, po.PurchaseOrder)
            received = after.received()
            progress = [
                wire.LineProgress(sku=line.sku, ordered=line.quantity, received=received[line.sku])
                for line in after.details.products
            ]
            return wire.PurchaseOrderReceiptRecorded(
                type="purchase_order.receipt_recorded",
                data=wire.ReceiptData(receipt=receipt_to_wire(receipt), progress=progress),
                **metadata,
            )
        case po.InvoiceLinked(invoice=invoice):
            return wire.PurchaseOrderInvoiceLinked(
                type="purchase_order.invoice_linked", data=invoice_to_wire(invoice), **metadata
            )
        case po.PurchaseOrderDeleted():
            return wire.PurchaseOrderDeleted(type="purchase_order.deleted", **metadata)
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover
