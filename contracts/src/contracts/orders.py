"""Customer-order messages: commands on orders.commands, events, rejections.

Statuses and deletion rules follow EON's shipments (seed 003); ownership and cascade follow
seed 002; cancel reasons are Shopify's. Events carry no personal data: addresses stay in the
service, and downstream systems get skus, quantities and amounts.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, StringConstraints, TypeAdapter
from pydantic_core import PydanticCustomError
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217

from contracts.common import (
    CommandMetadata,
    EventMetadata,
    Identifier,
    NoPayload,
    RejectionMetadata,
    WireModel,
)
from contracts.emails import EmailAddress

MAX_ORDER_ITEMS = 500


class OrderStatus(StrEnum):
    PLACED = "placed"
    READY = "ready"
    FULFILLED = "fulfilled"
    SENT = "sent"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class CancelReason(StrEnum):
    CUSTOMER = "customer"
    DECLINED = "declined"
    FRAUD = "fraud"
    INVENTORY = "inventory"
    OTHER = "other"
    STAFF = "staff"


AddressLine = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()./-]+$")]


class Address(WireModel):
    """Personal data: kept by the service, never published in an event."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    lines: Annotated[list[AddressLine], Field(min_length=1, max_length=4)]
    city: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: CountryAlpha2 = Field(description="ISO 3166-1 alpha-2, e.g. DE.")
    phone: Phone | None = None
    email: EmailAddress | None = None


PRICE_DECIMAL_PLACES = 4


def _places_as_written(price: Decimal) -> Decimal:
    """`decimal_places` counts a value's places with its trailing zeros dropped, so 12.500000000
    and 0E-16384 pass it. A unit price keeps the text it was sent with (the order, its events
    and the order_items view repeat it), so its places as written are what stay within four."""
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PRICE_DECIMAL_PLACES:
        raise PydanticCustomError(
            "decimal_max_places",
            "Decimal input should have no more than {decimal_places} decimal places, as written",
            {"decimal_places": PRICE_DECIMAL_PLACES},
        )
    return price


UnitPrice = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=PRICE_DECIMAL_PLACES),
    AfterValidator(_places_as_written),
]


class OrderItem(WireModel):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(description="Minimum 1.")
    unit_price: UnitPrice
    currency: ISO4217 = Field(description="The same for every item of an order.")


Items = Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ORDER_ITEMS)]
VoucherCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class OrderDetails(WireModel):
    customer_id: Identifier
    warehouse_id: Identifier
    items: Items
    shipping_address: Address
    billing_address: Address
    voucher_code: VoucherCode | None = Field(
        default=None, description="Held by at most one live order of the tenant."
    )


class OrderChanges(WireModel):
    """What `order.update` replaces; absent parts stay as they are."""

    items: Items | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None


class OrderStatusChange(WireModel):
    status: OrderStatus
    reason: CancelReason | None = Field(default=None, description="Only with 'cancelled'.")


class DataGroup(StrEnum):
    """Personal data erased together: each group has its own key per order."""

    SHIPPING_ADDRESS = "shipping_address"
    BILLING_ADDRESS = "billing_address"
    CONTACT = "contact"


class Redaction(WireModel):
    groups: Annotated[list[DataGroup], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: list(DataGroup),
        description="What to erase; every group when absent. Contact = phones and emails.",
    )


class RedactionData(WireModel):
    groups: list[DataGroup]


class _OrderCommand(CommandMetadata):
    order_id: Identifier


class CreateOrder(_OrderCommand):
    """Place a customer order; it starts in 'placed'."""

    type: Literal["order.create"]
    payload: OrderDetails


class UpdateOrder(_OrderCommand):
    """Items and addresses while 'placed'; only the shipping address while 'ready'."""

    type: Literal["order.update"]
    payload: OrderChanges


class ChangeOrderStatus(_OrderCommand):
    """Move an order along the status transition table."""

    type: Literal["order.change_status"]
    payload: OrderStatusChange


class DeleteOrder(_OrderCommand):
    """Remove a 'placed' order and its items for good; later statuses must be cancelled."""

    type: Literal["order.delete"]
    payload: NoPayload = NoPayload()


class RedactOrder(_OrderCommand):
    """Erase personal data of the order, in every version of its history; the order stays live.

    While the order is placed, ready or fulfilled the erasure is scheduled and runs in the same
    transaction that moves it to sent, delivered or cancelled.
    """

    type: Literal["order.redact"]
    payload: Redaction = Redaction()


class CustomerRedaction(WireModel):
    orders_to_redact: Annotated[list[Identifier], Field(min_length=1, max_length=1000)] | None = (
        Field(default=None, description="Only these orders of the customer; all when absent.")
    )


class RedactCustomer(CommandMetadata):
    """Erase a customer's personal data across their orders (Shopify's customers/redact).

    Key = customer_id. Every group of every order is erased (or scheduled, for orders still being
    fulfilled), the customer is recorded as erased, and one `customer.redacted` receipt follows.
    """

    type: Literal["customer.redact"]
    customer_id: Identifier
    payload: CustomerRedaction = CustomerRedaction()


OrderCommandMessage = (
    CreateOrder | UpdateOrder | ChangeOrderStatus | DeleteOrder | RedactOrder | RedactCustomer
)
OrderCommand = Annotated[OrderCommandMessage, Field(discriminator="type")]
ORDER_COMMAND: TypeAdapter[OrderCommandMessage] = TypeAdapter(OrderCommand)


class OrderSnapshot(WireModel):
    """The order after a change, without personal data."""

    customer_id: Identifier
    warehouse_id: Identifier
    status: OrderStatus
    items: list[OrderItem]
    total: Decimal = Field(description="Sum of quantity x unit_price over every item.")
    currency: ISO4217
    voucher_code: str | None


class OrderUpdateData(WireModel):
    changed: list[Literal["items", "shipping_address", "billing_address"]] = Field(
        description="What the update replaced; addresses themselves are never published."
    )
    order: OrderSnapshot


class OrderStatusChangeData(WireModel):
    from_status: OrderStatus
    to_status: OrderStatus
    reason: CancelReason | None = None


class _OrderEvent(EventMetadata):
    order_id: Identifier


class OrderCreated(_OrderEvent):
    type: Literal["order.created"]
    data: OrderSnapshot


class OrderUpdated(_OrderEvent):
    type: Literal["order.updated"]
    data: OrderUpdateData


class OrderStatusChanged(_OrderEvent):
    type: Literal["order.status_changed"]
    data: OrderStatusChangeData


class OrderDeleted(_OrderEvent):
    """The order and its items are gone; the event carries none of their data."""

    type: Literal["order.deleted"]
    data: NoPayload = NoPayload()


class OrderRedacted(_OrderEvent):
    """The groups' keys are destroyed: no copy of their values can be read any more."""

    type: Literal["order.redacted"]
    data: RedactionData


class OrderRedactionScheduled(_OrderEvent):
    type: Literal["order.redaction_scheduled"]
    data: RedactionData


class CustomerRedactionReceipt(WireModel):
    customer_id: Identifier
    orders_affected: list[str] = Field(description="Orders whose data was erased now.")
    orders_scheduled: list[str] = Field(
        description="Orders still being fulfilled: erased when they ship or are cancelled."
    )
    groups_erased: list[DataGroup]
    keys_destroyed: int = Field(
        description="Data keys of the orders' groups, and of dead letters that named the customer."
    )
    completed_at: datetime


class CustomerRedacted(EventMetadata):
    """The receipt a compliance team files; `version` counts the customer's redactions."""

    type: Literal["customer.redacted"]
    customer_id: Identifier
    data: CustomerRedactionReceipt


OrderEventMessage = (
    OrderCreated
    | OrderUpdated
    | OrderStatusChanged
    | OrderDeleted
    | OrderRedacted
    | OrderRedactionScheduled
    | CustomerRedacted
)
OrderEvent = Annotated[OrderEventMessage, Field(discriminator="type")]
ORDER_EVENT: TypeAdapter[OrderEventMessage] = TypeAdapter(OrderEvent)


class OrderRejection(RejectionMetadata):
    order_id: str | None = None
    customer_id: str | None = Field(default=None, description="Set for customer.redact.")
