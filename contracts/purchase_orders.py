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


class StatusChange(WireModel):
    status: PurchaseOrderStatus
    reason: LongText | None = Field(default=None, description="Accepted only with 'cancelled'.")


class _PurchaseOrderCommand(CommandMetadata):
    purchase_order_id: Identifier


class CreatePurchaseOrder(_PurchaseOrderCommand):
    """Create a purchase order in 'draft'."""

    type: Literal["purchase_order.create"]
    payload: PurchaseOrderDetails


class ChangePurchaseOrderStatus(_PurchaseOrderCommand):
    """Move a purchase order along the status transition table."""

    type: Literal["purchase_order.change_status"]
    payload: StatusChange


PurchaseOrderCommand = Annotated[
    CreatePurchaseOrder | ChangePurchaseOrderStatus, Field(discriminator="type")
]
PURCHASE_ORDER_COMMAND: TypeAdapter[CreatePurchaseOrder | ChangePurchaseOrderStatus] = TypeAdapter(
    PurchaseOrderCommand
)


class PurchaseOrderSnapshot(PurchaseOrderDetails):
    status: PurchaseOrderStatus


class StatusChangeData(WireModel):
    from_status: PurchaseOrderStatus
    to_status: PurchaseOrderStatus
    reason: str | None = None


class _PurchaseOrderEvent(EventMetadata):
    purchase_order_id: Identifier


class PurchaseOrderCreated(_PurchaseOrderEvent):
    type: Literal["purchase_order.created"]
    data: PurchaseOrderSnapshot


class PurchaseOrderStatusChanged(_PurchaseOrderEvent):
    type: Literal["purchase_order.status_changed"]
    data: StatusChangeData


PurchaseOrderEvent = Annotated[
    PurchaseOrderCreated | PurchaseOrderStatusChanged, Field(discriminator="type")
]
PURCHASE_ORDER_EVENT: TypeAdapter[PurchaseOrderCreated | PurchaseOrderStatusChanged] = TypeAdapter(
    PurchaseOrderEvent
)


class PurchaseOrderRejection(RejectionMetadata):
    purchase_order_id: str | None
