"""The events the customer-order family publishes, from its domain's transitions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from contracts import orders as wire
from service.app.orders.translate import groups_to_wire
from service.domain import orders


def wire_event(
    transition: orders.Transition, snapshot: BaseModel | None, metadata: dict[str, Any]
) -> wire.OrderEventMessage:
    """The event for a transition; `snapshot` is the order after it (None once deleted)."""
    assert snapshot is None or isinstance(snapshot, wire.OrderSnapshot)
    match transition.event:
        case orders.OrderCreated():
            assert snapshot is not None
            return wire.OrderCreated(type="order.created", data=snapshot, **metadata)
        case orders.OrderUpdated() as updated:
            assert snapshot is not None
            data = wire.OrderUpdateData(
                changed=[part.value for part in updated.parts()], order=snapshot
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
