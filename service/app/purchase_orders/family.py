"""The purchase-order family: its registration, and what the kernel asks of it (the rules, the
events it publishes, how its documents are stored)."""

from __future__ import annotations

from datetime import datetime

from contracts import purchase_orders as wire
from contracts.previews import PurchaseOrderPreview
from contracts.state import PurchaseOrderState
from contracts.topics import PURCHASE_ORDERS, DocumentTopics
from service.app.family import Family
from service.app.kernel import DocumentRules, EventParts, stateless
from service.app.parse import CommandSpec
from service.app.personal_fields import unless_told_apart
from service.app.purchase_orders.translate import (
    command_from_wire,
    invoice_to_wire,
    order_from_snapshot,
    receipt_to_wire,
    shipping_details_to_wire,
    snapshot_to_wire,
)
from service.app.state_topic import StateRules, shown_until_deleted
from service.app.wire_json import Fields, Written
from service.domain import purchase_orders as po
from service.domain.permissions import PURCHASE_ORDERS_AUTHORITY, Access
from service.domain.purchase_orders.stock import movements


class PurchaseOrderCodec:
    """Purchase orders are kept as the snapshot of their last version."""

    def status(self, document: po.State) -> str:
        assert isinstance(document, po.PurchaseOrder)
        return document.status.value

    def load(self, tenant_id: str, document_id: str, version: int, stored: str) -> po.State:
        snapshot = wire.PurchaseOrderSnapshot.model_validate_json(stored)
        return order_from_snapshot(tenant_id, document_id, version, snapshot)

    def tombstone(
        self, tenant_id: str, document_id: str, version: int, deleted_at: datetime
    ) -> po.State:
        return po.DeletedPurchaseOrder(tenant_id, document_id, version, deleted_at)


RULES: DocumentRules[po.PurchaseOrderCommand, po.State, po.PurchaseOrderEvent] = DocumentRules(
    begin_run=stateless(po.decide),
    fold=po.fold,
    wire_event=lambda transition, snapshot: _wire_event(transition, snapshot),
    snapshot=lambda state: snapshot_to_wire(_live(state)),
    movements=movements,
    movement_source="purchase_order",
    state=StateRules(shown=shown_until_deleted, model=PurchaseOrderState),
)


def purchase_order_family(prefix: str = "") -> Family[po.PurchaseOrderCommand]:
    return Family(
        name=PURCHASE_ORDERS,
        topics=DocumentTopics.for_family(PURCHASE_ORDERS, prefix),
        commands=CommandSpec(
            "purchase_order_id",
            wire.PURCHASE_ORDER_COMMAND,
            command_from_wire,
            access=_access,
            authority=PURCHASE_ORDERS_AUTHORITY,
        ),
        rejection_model=wire.PurchaseOrderRejection,
        preview_model=PurchaseOrderPreview,
        # An order command sent here by mistake carries names and addresses.
        seals_dead_letters=unless_told_apart("purchase_order."),
        rules=RULES,
        codec=PurchaseOrderCodec(),
        command_prefixes=("purchase_order.",),
    )


def _wire_event(transition: po.Transition, snapshot: Written | None) -> EventParts:
    after = transition.after
    match transition.event:
        case po.PurchaseOrderCreated():
            assert snapshot is not None
            return EventParts(wire.PurchaseOrderCreated, snapshot)
        case po.PurchaseOrderUpdated():
            assert snapshot is not None
            return EventParts(wire.PurchaseOrderUpdated, snapshot)
        case po.ShippingDetailsUpdated(changes=changes):
            assert isinstance(after, po.PurchaseOrder)
            change = {
                "changed_fields": [name for name, _ in changes],
                "shipping_details": shipping_details_to_wire(after.details),
            }
            return EventParts(wire.PurchaseOrderShippingDetailsUpdated, change)
        case po.PurchaseOrderStatusChanged(from_status=old, to_status=new, reason=reason):
            data = {"from_status": old.value, "to_status": new.value, "reason": reason}
            return EventParts(wire.PurchaseOrderStatusChanged, data)
        case po.ReceiptRecorded(receipt=receipt):
            assert isinstance(after, po.PurchaseOrder)
            received = after.received()
            progress = [
                {"sku": line.sku, "ordered": line.quantity, "received": received.get(line.sku, 0)}
                for line in after.details.products
            ]
            recorded: Fields = {"receipt": receipt_to_wire(receipt), "progress": progress}
            return EventParts(wire.PurchaseOrderReceiptRecorded, recorded)
        case po.InvoiceLinked(invoice=invoice):
            return EventParts(wire.PurchaseOrderInvoiceLinked, invoice_to_wire(invoice))
        case po.PurchaseOrderDeleted():
            return EventParts(wire.PurchaseOrderDeleted, {})
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover


def _live(state: po.State) -> po.PurchaseOrder:
    assert isinstance(state, po.PurchaseOrder), "only a live order has a snapshot"
    return state


def _access(command_type: str, command: po.PurchaseOrderCommand) -> Access:
    if isinstance(command, po.ChangePurchaseOrderStatus):
        return Access(command_type, status=command.status.value)
    return Access(command_type)
