"""evolve(state, event) -> the next state; fold() applies a decision's events in turn. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from service.domain import decisions
from service.domain.orders.model import (
    DeletedOrder,
    Order,
    OrderCreated,
    OrderDeleted,
    OrderEvent,
    OrderRedacted,
    OrderRedactionScheduled,
    OrderStatusChanged,
    OrderUpdated,
    State,
)
from service.domain.orders.rules import INITIAL_STATUS


def evolve(current: State | None, event: OrderEvent, *, tenant_id: str, order_id: str) -> State:
    """The state after `event`; each event is one new version."""
    if isinstance(event, OrderCreated):
        return Order(tenant_id, order_id, INITIAL_STATUS, 1, event.details)
    assert isinstance(current, Order), f"{type(event).__name__} needs a live order"
    version = current.version + 1
    match event:
        case OrderUpdated(items=items, shipping_address=shipping, billing_address=billing):
            details = replace(
                current.details,
                items=items or current.details.items,
                shipping_address=shipping or current.details.shipping_address,
                billing_address=billing or current.details.billing_address,
            )
            return replace(current, details=details, version=version)
        case OrderStatusChanged(to_status=to_status, reason=reason):
            return replace(current, status=to_status, cancel_reason=reason, version=version)
        case OrderDeleted():
            return DeletedOrder(tenant_id, order_id, version)
        case OrderRedactionScheduled(groups=groups):
            pending = current.redaction_pending | (groups - current.redacted)
            return replace(current, redaction_pending=pending, version=version)
        case OrderRedacted(groups=groups):
            return replace(
                current,
                redacted=current.redacted | groups,
                redaction_pending=current.redaction_pending - groups,
                version=version,
            )
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


Transition = decisions.Transition[OrderEvent, State]


def fold(
    current: State | None, events: Sequence[OrderEvent], tenant_id: str, order_id: str
) -> list[Transition]:
    """Each event with the state before and after it, in order."""

    def step(state: State | None, event: OrderEvent) -> State:
        return evolve(state, event, tenant_id=tenant_id, order_id=order_id)

    return decisions.fold_events(current, events, step)
