"""Turns decisions into the messages that leave the service: events, rejections, dead letters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID, uuid4

from contracts.common import ErrorDetail
from contracts.purchase_orders import (
    PurchaseOrderCreated,
    PurchaseOrderRejection,
    PurchaseOrderStatusChanged,
    StatusChangeData,
)
from contracts.topics import DocumentTopics
from service.app.incoming import IncomingMessage
from service.app.parse import Identity
from service.app.ports import HistoryEntry, OutboxMessage
from service.app.translate import snapshot_to_wire
from service.domain import purchase_orders as po
from service.domain.problems import Problem

DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_SOURCE = "x-dead-letter-source"


def rejection_message(
    topics: DocumentTopics,
    identity: Identity,
    command_id: UUID,
    problems: Sequence[Problem],
    rejected_at: datetime,
) -> OutboxMessage:
    rejection = PurchaseOrderRejection(
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


def event_messages(
    topics: DocumentTopics,
    command_id: UUID,
    states: Sequence[tuple[po.PurchaseOrderEvent, po.PurchaseOrder]],
    occurred_at: datetime,
    new_event_id: Callable[[], UUID] = uuid4,
) -> tuple[list[OutboxMessage], list[HistoryEntry]]:
    """One event message and one history entry per (event, state after it)."""
    messages: list[OutboxMessage] = []
    history: list[HistoryEntry] = []
    for event, state in states:
        event_id = new_event_id()
        common = {
            "event_id": event_id,
            "tenant_id": state.tenant_id,
            "purchase_order_id": state.purchase_order_id,
            "version": state.version,
            "command_id": command_id,
            "occurred_at": occurred_at,
        }
        snapshot = snapshot_to_wire(state)
        wire_event: PurchaseOrderCreated | PurchaseOrderStatusChanged
        match event:
            case po.PurchaseOrderCreated():
                wire_event = PurchaseOrderCreated(
                    type="purchase_order.created", data=snapshot, **common
                )
            case po.PurchaseOrderStatusChanged(from_status=old, to_status=new, reason=reason):
                wire_event = PurchaseOrderStatusChanged(
                    type="purchase_order.status_changed",
                    data=StatusChangeData(from_status=old, to_status=new, reason=reason),
                    **common,
                )
        messages.append(
            OutboxMessage(
                topics.events,
                state.purchase_order_id,
                wire_event.model_dump_json().encode(),
                (("event_type", wire_event.type.encode()),),
            )
        )
        history.append(
            HistoryEntry(
                state.version,
                command_id,
                event_id,
                wire_event.type,
                snapshot.model_dump_json().encode(),
            )
        )
    return messages, history
