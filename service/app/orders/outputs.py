"""What an accepted customer-order command produces: per event, the wire event, the version it
left in history, and its stock movements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

from contracts import orders as wire
from contracts.inventory import MovementSource, movement_key
from contracts.topics import DocumentTopics
from service.app.orders.translate import groups_to_wire, snapshot_to_wire
from service.app.outcomes import event_actor, event_message, movement_message
from service.app.parse import ValidCommand
from service.app.ports import HistoryEntry, OrderVersion, OutboxMessage
from service.domain import orders
from service.domain.orders.stock import movements


@dataclass
class OrderOutput:
    """What a command's events produce: the messages, the final state, the versions it left,
    and the stock items it moved (so their rows queue in commit order per item)."""

    final: orders.State
    messages: list[OutboxMessage] = field(default_factory=list)
    versions: list[OrderVersion] = field(default_factory=list)
    stock_keys: list[str] = field(default_factory=list)


def order_outputs(
    topics: DocumentTopics,
    movements_topic: str,
    cmd: ValidCommand[orders.CommandForOrders],
    transitions: Sequence[orders.Transition],
    now: datetime,
) -> OrderOutput:
    """Per transition: its event, its version while the order lives, its stock movements."""
    output = OrderOutput(transitions[-1].after)
    command_id = cmd.command_id
    for transition in transitions:
        after = transition.after
        tenant_id, order_id = after.tenant_id, after.order_id
        event_id = uuid4()
        event = _wire_event(
            transition,
            event_id=event_id,
            tenant_id=tenant_id,
            order_id=order_id,
            version=after.version,
            command_id=command_id,
            occurred_at=now,
            actor=event_actor(cmd.actor),
        )
        output.messages.append(event_message(topics.events, order_id, event))
        if isinstance(after, orders.Order):
            snapshot = snapshot_to_wire(after).model_dump_json().encode()
            entry = HistoryEntry(
                after.version, command_id, event_id, event.type, snapshot, cmd.actor
            )
            output.versions.append(OrderVersion(after, entry))
        source = MovementSource(type="order", id=order_id, version=after.version, event_id=event_id)
        for m in movements(transition.before, after):
            output.stock_keys.append(movement_key(tenant_id, m.warehouse_id, m.sku))
            output.messages.append(
                movement_message(movements_topic, tenant_id, m, source, event.type, now)
            )
    return output


def _wire_event(transition: orders.Transition, **metadata: Any) -> wire.OrderEventMessage:
    after = transition.after
    match transition.event:
        case orders.OrderCreated():
            assert isinstance(after, orders.Order)
            return wire.OrderCreated(type="order.created", data=snapshot_to_wire(after), **metadata)
        case orders.OrderUpdated() as updated:
            assert isinstance(after, orders.Order)
            data = wire.OrderUpdateData(
                changed=[part.value for part in updated.parts()], order=snapshot_to_wire(after)
            )
            return wire.OrderUpdated(type="order.updated", data=data, **metadata)
        case orders.OrderStatusChanged(from_status=old, to_status=new, reason=reason):
            data_status = wire.OrderStatusChangeData(
                from_status=wire.OrderStatus(old.value),
                to_status=wire.OrderStatus(new.value),
                reason=wire.CancelReason(reason.value) if reason else None,
            )
            return wire.OrderStatusChanged(
                type="order.status_changed", data=data_status, **metadata
            )
        case orders.OrderDeleted():
            return wire.OrderDeleted(type="order.deleted", **metadata)
        case orders.OrderRedacted(groups=groups):
            return wire.OrderRedacted(
                type="order.redacted", data=groups_to_wire(groups), **metadata
            )
        case orders.OrderRedactionScheduled(groups=groups):
            return wire.OrderRedactionScheduled(
                type="order.redaction_scheduled", data=groups_to_wire(groups), **metadata
            )
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover
