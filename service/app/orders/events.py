"""The events the customer-order family publishes, from its domain's transitions."""

from __future__ import annotations

from contracts import orders as wire
from service.app.kernel import EventParts
from service.app.orders.translate import groups_to_wire
from service.app.wire_json import Written
from service.domain import orders


def wire_event(transition: orders.Transition, snapshot: Written | None) -> EventParts:
    """The event for a transition; `snapshot` is the order after it (None once deleted)."""
    match transition.event:
        case orders.OrderCreated():
            assert snapshot is not None
            return EventParts(wire.OrderCreated, snapshot)
        case orders.OrderUpdated() as updated:
            assert snapshot is not None
            data = {"changed": [part.value for part in updated.parts()], "order": snapshot}
            return EventParts(wire.OrderUpdated, data)
        case orders.OrderStatusChanged(from_status=old, to_status=new, reason=reason):
            status = {
                "from_status": old.value,
                "to_status": new.value,
                "reason": reason.value if reason else None,
            }
            return EventParts(wire.OrderStatusChanged, status)
        case orders.OrderDeleted():
            return EventParts(wire.OrderDeleted, {})
        case orders.OrderRedacted(groups=groups):
            return EventParts(wire.OrderRedacted, groups_to_wire(groups))
        case orders.OrderRedactionScheduled(groups=groups):
            return EventParts(wire.OrderRedactionScheduled, groups_to_wire(groups))
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover
