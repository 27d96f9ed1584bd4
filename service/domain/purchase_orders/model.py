"""Purchase-order types: state, commands (imperative) and events (past tense)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from service.domain.stock import Quantities, tally
from service.domain.values import frozen


class Status(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    RECEIVING = "receiving"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"


@frozen
class ProductLine:
    sku: str
    quantity: int
    supplier_sku: str | None = None
    cost: Decimal | None = None


@frozen
class PurchaseOrderDetails:
    supplier_id: str
    warehouse_id: str
    products: tuple[ProductLine, ...]
    order_date: datetime | None = None
    expected_delivery_date: datetime | None = None
    payment_terms: str | None = None
    payment_status: str | None = None
    currency_code: str | None = None
    shipping_carrier: str | None = None
    tracking_number: str | None = None
    reference_number: str | None = None
    note_to_supplier: str | None = None

    def with_changes(self, changes: tuple[tuple[str, object], ...]) -> PurchaseOrderDetails:
        """A copy with the named fields set; the caller has checked the names."""
        fields: dict[str, Any] = dict(changes)
        return replace(self, **fields)


@frozen
class ReceiptLine:
    sku: str
    quantity: int


@frozen
class Receipt:
    receipt_id: str
    lines: tuple[ReceiptLine, ...]
    received_at: datetime | None = None


@frozen
class Invoice:
    invoice_id: str
    amount: Decimal
    currency_code: str | None = None
    invoiced_at: datetime | None = None


@frozen
class PurchaseOrder:
    tenant_id: str
    purchase_order_id: str
    status: Status
    version: int
    details: PurchaseOrderDetails
    receipts: tuple[Receipt, ...] = ()
    invoices: tuple[Invoice, ...] = ()

    is_deleted = False

    @property
    def document_id(self) -> str:
        return self.purchase_order_id

    def ordered(self) -> Quantities:
        return {line.sku: line.quantity for line in self.details.products}

    def received(self) -> Quantities:
        return tally((line.sku, line.quantity) for r in self.receipts for line in r.lines)

    def outstanding(self) -> Quantities:
        """Ordered and not yet received, per sku (never negative)."""
        received = self.received()
        return {
            sku: left
            for sku, quantity in self.ordered().items()
            if (left := quantity - received.get(sku, 0)) > 0
        }


@frozen
class DeletedPurchaseOrder:
    """The tombstone a deletion leaves: enough to answer later commands, no document data."""

    tenant_id: str
    purchase_order_id: str
    version: int
    deleted_at: datetime | None = None

    is_deleted = True

    @property
    def document_id(self) -> str:
        return self.purchase_order_id


# Commands.


@frozen
class CreatePurchaseOrder:
    details: PurchaseOrderDetails
    expected_version: int | None = None


@frozen
class UpdatePurchaseOrder:
    """Replace every field (only in draft)."""

    details: PurchaseOrderDetails
    expected_version: int | None = None


@frozen
class UpdateShippingDetails:
    """Set the given shipping fields (only while open); fields not named stay as they are."""

    changes: tuple[tuple[str, object], ...]
    expected_version: int | None = None


@frozen
class ChangePurchaseOrderStatus:
    status: Status
    reason: str | None = None
    expected_version: int | None = None


@frozen
class RecordReceipt:
    receipt: Receipt
    expected_version: int | None = None


@frozen
class LinkInvoice:
    invoice: Invoice
    expected_version: int | None = None


@frozen
class DeletePurchaseOrder:
    expected_version: int | None = None


PurchaseOrderCommand = (
    CreatePurchaseOrder
    | UpdatePurchaseOrder
    | UpdateShippingDetails
    | ChangePurchaseOrderStatus
    | RecordReceipt
    | LinkInvoice
    | DeletePurchaseOrder
)


# Events: each one is one new document version.


@frozen
class PurchaseOrderCreated:
    details: PurchaseOrderDetails


@frozen
class PurchaseOrderUpdated:
    details: PurchaseOrderDetails


@frozen
class ShippingDetailsUpdated:
    changes: tuple[tuple[str, object], ...]


@frozen
class PurchaseOrderStatusChanged:
    from_status: Status
    to_status: Status
    reason: str | None = None


@frozen
class ReceiptRecorded:
    receipt: Receipt


@frozen
class InvoiceLinked:
    invoice: Invoice


@frozen
class PurchaseOrderDeleted:
    pass


PurchaseOrderEvent = (
    PurchaseOrderCreated
    | PurchaseOrderUpdated
    | ShippingDetailsUpdated
    | PurchaseOrderStatusChanged
    | ReceiptRecorded
    | InvoiceLinked
    | PurchaseOrderDeleted
)

State = PurchaseOrder | DeletedPurchaseOrder
