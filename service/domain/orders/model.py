"""Customer-order types: state, commands (imperative) and events (past tense)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from service.domain.stock import Quantities
from service.domain.values import frozen


class Status(StrEnum):
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


class Part(StrEnum):
    """The parts of an order that `update` can replace."""

    ITEMS = "items"
    SHIPPING_ADDRESS = "shipping_address"
    BILLING_ADDRESS = "billing_address"


class DataGroup(StrEnum):
    """Personal data that is keyed, and erased, separately."""

    SHIPPING_ADDRESS = "shipping_address"
    BILLING_ADDRESS = "billing_address"
    CONTACT = "contact"


@frozen
class Address:
    name: str
    lines: tuple[str, ...]
    city: str
    postal_code: str
    country: str
    phone: str | None = None
    email: str | None = None


@frozen
class Item:
    sku: str
    quantity: int
    unit_price: Decimal
    currency: str


@frozen
class OrderDetails:
    customer_id: str
    warehouse_id: str
    items: tuple[Item, ...]
    shipping_address: Address
    billing_address: Address
    voucher_code: str | None = None


@frozen
class Actor:
    type: str
    id: str

    @property
    def customer_id(self) -> str | None:
        """The customer this actor is, if it is one: customers see only their own orders."""
        return self.id if self.type == "customer" else None


@frozen
class Order:
    tenant_id: str
    order_id: str
    status: Status
    version: int
    details: OrderDetails
    cancel_reason: CancelReason | None = None
    redacted: frozenset[DataGroup] = frozenset()
    """Groups erased for good: their values read back as placeholders."""
    redaction_pending: frozenset[DataGroup] = frozenset()
    """Groups to erase as soon as the order is no longer being fulfilled."""

    is_deleted = False

    @property
    def document_id(self) -> str:
        return self.order_id

    def quantities(self) -> Quantities:
        return {item.sku: item.quantity for item in self.details.items}

    def total(self) -> Decimal:
        return sum((i.unit_price * i.quantity for i in self.details.items), Decimal(0))


@frozen
class DeletedOrder:
    """The tombstone a deletion leaves: enough to answer later commands, no order data."""

    tenant_id: str
    order_id: str
    version: int
    deleted_at: datetime | None = None

    is_deleted = True

    @property
    def document_id(self) -> str:
        return self.order_id


State = Order | DeletedOrder


# Commands. `actor` is who sent it; a customer actor may only touch their own orders.


@frozen
class CreateOrder:
    details: OrderDetails
    expected_version: int | None = None
    actor: Actor | None = None


@frozen
class UpdateOrder:
    """Replace the parts given; parts left as None stay."""

    items: tuple[Item, ...] | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    expected_version: int | None = None
    actor: Actor | None = None

    def parts(self) -> tuple[Part, ...]:
        return _given(self.items, self.shipping_address, self.billing_address)


@frozen
class ChangeOrderStatus:
    status: Status
    reason: CancelReason | None = None
    expected_version: int | None = None
    actor: Actor | None = None


@frozen
class DeleteOrder:
    expected_version: int | None = None
    actor: Actor | None = None


@frozen
class RedactOrder:
    """Erase personal data of the order while it stays live (status, items, amounts remain)."""

    groups: frozenset[DataGroup] = frozenset(DataGroup)
    expected_version: int | None = None
    actor: Actor | None = None


@frozen
class RedactCustomer:
    """Erase a customer across their orders, or only `orders_to_redact` when given."""

    customer_id: str
    orders_to_redact: tuple[str, ...] | None = None
    expected_version: int | None = None
    actor: Actor | None = None


OrderCommand = CreateOrder | UpdateOrder | ChangeOrderStatus | DeleteOrder | RedactOrder
"""Commands about one order."""

CommandForOrders = OrderCommand | RedactCustomer
"""Everything on the orders command topic."""


SEALED = Address("", (), "", "", "")
"""Stands in for both addresses of an order loaded for commands that never read its personal
data: it stays encrypted, and the decision sees this instead. Known by identity (`is`), never
stored: a store refuses to write personal data taken from it."""


def unopened_change(loaded: OrderDetails | None, changed: OrderDetails) -> str | None:
    """The address role (`shipping_address`, `billing_address`) whose change cannot be stored,
    or None. An order loaded sealed must keep both addresses SEALED: without its data, no group
    that mixes a new value with a sealed one (contact holds both addresses' phone and e-mail)
    can be worked out. And an order loaded opened, or new, never holds SEALED."""
    loaded_sealed = loaded is not None and loaded.shipping_address is SEALED
    for role, address in (
        ("shipping_address", changed.shipping_address),
        ("billing_address", changed.billing_address),
    ):
        if (address is SEALED) is not loaded_sealed:
            return role
    return None


# Events.


@frozen
class OrderCreated:
    details: OrderDetails


@frozen
class OrderUpdated:
    items: tuple[Item, ...] | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None

    def parts(self) -> tuple[Part, ...]:
        return _given(self.items, self.shipping_address, self.billing_address)


@frozen
class OrderStatusChanged:
    from_status: Status
    to_status: Status
    reason: CancelReason | None = None


@frozen
class OrderDeleted:
    pass


@frozen
class OrderRedacted:
    groups: frozenset[DataGroup]


@frozen
class OrderRedactionScheduled:
    groups: frozenset[DataGroup]


OrderEvent = (
    OrderCreated
    | OrderUpdated
    | OrderStatusChanged
    | OrderDeleted
    | OrderRedacted
    | OrderRedactionScheduled
)


def _given(
    items: tuple[Item, ...] | None, shipping: Address | None, billing: Address | None
) -> tuple[Part, ...]:
    """The parts an update names, in Part order."""
    values = {Part.ITEMS: items, Part.SHIPPING_ADDRESS: shipping, Part.BILLING_ADDRESS: billing}
    return tuple(part for part, value in values.items() if value is not None)
