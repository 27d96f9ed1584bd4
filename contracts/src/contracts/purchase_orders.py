"""Purchase-order messages: commands on purchase-orders.commands, events, rejections.

Fields and enums follow ShipStation's v2 purchase-order API.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StrictInt, TypeAdapter
from pydantic_extra_types.currency_code import ISO4217

from contracts.common import (
    CommandMetadata,
    EventMetadata,
    Identifier,
    LongText,
    NoPayload,
    RejectionMetadata,
    Text,
    Timestamp,
    WireModel,
)


class PurchaseOrderStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    RECEIVING = "receiving"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class PaymentTerms(StrEnum):
    NONE = "none"
    CASH_ON_DELIVERY = "cash_on_delivery"
    PAYMENT_ON_RECEIPT = "payment_on_receipt"
    PAYMENT_IN_ADVANCE = "payment_in_advance"
    NET_7 = "net_7"
    NET_15 = "net_15"
    NET_30 = "net_30"
    NET_45 = "net_45"
    NET_60 = "net_60"


class PaymentStatus(StrEnum):
    NONE = "none"
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    REFUNDED = "refunded"
    CREDIT_ISSUED = "credit_issued"
    OTHER = "other"


MAX_PRODUCT_LINES = 500


class ProductLine(WireModel):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000_000)] = Field(description="Minimum 1.")
    supplier_sku: Identifier | None = None
    cost: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)] | None = Field(
        default=None, description="Unit cost, minimum 0."
    )


class PurchaseOrderDetails(WireModel):
    """Every editable field of a purchase order (the body of ShipStation's PUT)."""

    supplier_id: Identifier
    warehouse_id: Identifier
    products: Annotated[list[ProductLine], Field(min_length=1, max_length=MAX_PRODUCT_LINES)]
    order_date: Timestamp | None = None
    expected_delivery_date: Timestamp | None = None
    payment_terms: PaymentTerms | None = None
    payment_status: PaymentStatus | None = None
    currency_code: ISO4217 | None = None
    shipping_carrier: Text | None = None
    tracking_number: Text | None = None
    reference_number: Text | None = None
    note_to_supplier: LongText | None = None


class ShippingDetails(WireModel):
    """The fields `update_shipping_details` may change while the order is open (seed 004).

    A field that is present is set (null clears it); an absent field is left as it is.
    """

    expected_delivery_date: Timestamp | None = None
    payment_terms: PaymentTerms | None = None
    payment_status: PaymentStatus | None = None
    currency_code: ISO4217 | None = None
    shipping_carrier: Text | None = None
    tracking_number: Text | None = None
    reference_number: Text | None = None
    order_date: Timestamp | None = None
    note_to_supplier: LongText | None = None


class StatusChange(WireModel):
    status: PurchaseOrderStatus
    reason: LongText | None = Field(default=None, description="Accepted only with 'cancelled'.")


class ReceiptLine(WireModel):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000_000)]


class Receipt(WireModel):
    """Goods that arrived: never more than ordered, only skus on the order."""

    receipt_id: Identifier = Field(description="The receipt's own reference, unique per order.")
    lines: Annotated[list[ReceiptLine], Field(min_length=1, max_length=MAX_PRODUCT_LINES)]
    received_at: Timestamp | None = None


class Invoice(WireModel):
    """A supplier invoice booked against the order."""

    invoice_id: Identifier = Field(description="The invoice's reference, unique per order.")
    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
    currency_code: ISO4217 | None = None
    invoiced_at: Timestamp | None = None


class _PurchaseOrderCommand(CommandMetadata):
    purchase_order_id: Identifier


class CreatePurchaseOrder(_PurchaseOrderCommand):
    """Create a purchase order in 'draft'."""

    type: Literal["purchase_order.create"]
    payload: PurchaseOrderDetails


class UpdatePurchaseOrder(_PurchaseOrderCommand):
    """Replace every field of a purchase order; only in 'draft'."""

    type: Literal["purchase_order.update"]
    payload: PurchaseOrderDetails


class UpdatePurchaseOrderShippingDetails(_PurchaseOrderCommand):
    """Change shipping-related fields; only in 'open'."""

    type: Literal["purchase_order.update_shipping_details"]
    payload: ShippingDetails


class ChangePurchaseOrderStatus(_PurchaseOrderCommand):
    """Move a purchase order along the status transition table."""

    type: Literal["purchase_order.change_status"]
    payload: StatusChange


class RecordPurchaseOrderReceipt(_PurchaseOrderCommand):
    """Record goods received; in 'open' or 'receiving'."""

    type: Literal["purchase_order.record_receipt"]
    payload: Receipt


class LinkPurchaseOrderInvoice(_PurchaseOrderCommand):
    """Book a supplier invoice against the order; not in 'draft' or 'cancelled'."""

    type: Literal["purchase_order.link_invoice"]
    payload: Invoice


class DeletePurchaseOrder(_PurchaseOrderCommand):
    """Remove a draft or cancelled order that nothing depends on, for good."""

    type: Literal["purchase_order.delete"]
    payload: NoPayload = NoPayload()


PurchaseOrderCommandMessage = (
    CreatePurchaseOrder
    | UpdatePurchaseOrder
    | UpdatePurchaseOrderShippingDetails
    | ChangePurchaseOrderStatus
    | RecordPurchaseOrderReceipt
    | LinkPurchaseOrderInvoice
    | DeletePurchaseOrder
)
PurchaseOrderCommand = Annotated[PurchaseOrderCommandMessage, Field(discriminator="type")]
PURCHASE_ORDER_COMMAND: TypeAdapter[PurchaseOrderCommandMessage] = TypeAdapter(PurchaseOrderCommand)


class PurchaseOrderSnapshot(PurchaseOrderDetails):
    """The whole order as it is after a change."""

    status: PurchaseOrderStatus
    receipts: list[Receipt] = Field(default_factory=list)
    invoices: list[Invoice] = Field(default_factory=list)


class StatusChangeData(WireModel):
    from_status: PurchaseOrderStatus
    to_status: PurchaseOrderStatus
    reason: str | None = None


class ShippingDetailsChange(WireModel):
    changed_fields: list[str]
    shipping_details: ShippingDetails = Field(description="Every shipping field after the change.")


class LineProgress(WireModel):
    sku: Identifier
    ordered: int
    received: int


class ReceiptData(WireModel):
    receipt: Receipt
    progress: list[LineProgress] = Field(description="Every line of the order after this receipt.")


class _PurchaseOrderEvent(EventMetadata):
    purchase_order_id: Identifier


class PurchaseOrderCreated(_PurchaseOrderEvent):
    type: Literal["purchase_order.created"]
    data: PurchaseOrderSnapshot


class PurchaseOrderUpdated(_PurchaseOrderEvent):
    type: Literal["purchase_order.updated"]
    data: PurchaseOrderSnapshot


class PurchaseOrderShippingDetailsUpdated(_PurchaseOrderEvent):
    type: Literal["purchase_order.shipping_details_updated"]
    data: ShippingDetailsChange


class PurchaseOrderStatusChanged(_PurchaseOrderEvent):
    type: Literal["purchase_order.status_changed"]
    data: StatusChangeData


class PurchaseOrderReceiptRecorded(_PurchaseOrderEvent):
    type: Literal["purchase_order.receipt_recorded"]
    data: ReceiptData


class PurchaseOrderInvoiceLinked(_PurchaseOrderEvent):
    type: Literal["purchase_order.invoice_linked"]
    data: Invoice


class PurchaseOrderDeleted(_PurchaseOrderEvent):
    """The order is gone for good; the event deliberately carries none of its data."""

    type: Literal["purchase_order.deleted"]
    data: NoPayload = NoPayload()


PurchaseOrderEventMessage = (
    PurchaseOrderCreated
    | PurchaseOrderUpdated
    | PurchaseOrderShippingDetailsUpdated
    | PurchaseOrderStatusChanged
    | PurchaseOrderReceiptRecorded
    | PurchaseOrderInvoiceLinked
    | PurchaseOrderDeleted
)
PurchaseOrderEvent = Annotated[PurchaseOrderEventMessage, Field(discriminator="type")]
PURCHASE_ORDER_EVENT: TypeAdapter[PurchaseOrderEventMessage] = TypeAdapter(PurchaseOrderEvent)


class PurchaseOrderRejection(RejectionMetadata):
    purchase_order_id: str | None
