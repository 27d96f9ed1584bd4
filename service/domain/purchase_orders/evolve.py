"""evolve(state, event) -> the next state; fold() applies a decision's events in turn. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from service.domain import decisions
from service.domain.purchase_orders.model import (
    DeletedPurchaseOrder,
    InvoiceLinked,
    PurchaseOrder,
    PurchaseOrderCreated,
    PurchaseOrderDeleted,
    PurchaseOrderEvent,
    PurchaseOrderStatusChanged,
    PurchaseOrderUpdated,
    ReceiptRecorded,
    ShippingDetailsUpdated,
    State,
)
from service.domain.purchase_orders.rules import INITIAL_STATUS


def evolve(
    current: State | None, event: PurchaseOrderEvent, *, tenant_id: str, purchase_order_id: str
) -> State:
    """The state after `event`; each event is one new version."""
    if isinstance(event, PurchaseOrderCreated):
        return PurchaseOrder(tenant_id, purchase_order_id, INITIAL_STATUS, 1, event.details)
    assert isinstance(current, PurchaseOrder), f"{type(event).__name__} needs a live order"
    version = current.version + 1
    match event:
        case PurchaseOrderUpdated(details=details):
            return replace(current, details=details, version=version)
        case ShippingDetailsUpdated(changes=changes):
            details = current.details.with_changes(changes)
            return replace(current, details=details, version=version)
        case PurchaseOrderStatusChanged(to_status=to_status):
            return replace(current, status=to_status, version=version)
        case ReceiptRecorded(receipt=receipt):
            return replace(current, receipts=(*current.receipts, receipt), version=version)
        case InvoiceLinked(invoice=invoice):
            return replace(current, invoices=(*current.invoices, invoice), version=version)
        case PurchaseOrderDeleted():
            return DeletedPurchaseOrder(tenant_id, purchase_order_id, version)
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


Transition = decisions.Transition[PurchaseOrderEvent, State]


def fold(
    current: State | None,
    events: Sequence[PurchaseOrderEvent],
    tenant_id: str,
    purchase_order_id: str,
) -> list[Transition]:
    """Each event with the state before and after it, in order."""

    def step(state: State | None, event: PurchaseOrderEvent) -> State:
        return evolve(state, event, tenant_id=tenant_id, purchase_order_id=purchase_order_id)

    return decisions.fold_events(current, events, step)
