"""The families as the AsyncAPI document describes them: topics, models, examples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from contracts import orders, previews
from contracts import purchase_orders as po
from contracts.headers import (
    DEAD_LETTER_KEY,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    TRACEPARENT,
)
from contracts.state import OrderState, PurchaseOrderState
from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.domain.stock import Bucket, Movement
from service.domain.values import frozen

REPLIES = "replies"
"""The reply channel's name in the document; its address has the tenant as a parameter."""


# --- Families -----------------------------------------------------------------------------


@frozen
class FamilyContract:
    """A document family as the document describes it, and the facts its examples show."""

    name: str
    """The topic family, e.g. 'purchase-orders'."""
    id_field: str
    key: str
    """What its commands, events, rejections and previews are keyed by."""
    command: Any
    """The discriminated union of its commands (an Annotated type)."""
    event: Any
    """The discriminated union of its events (an Annotated type)."""
    rejection: type[BaseModel]
    preview: type[BaseModel]
    state: type[BaseModel]
    type_prefix: str
    example_document: str
    example_statuses: tuple[str, str]
    example_snapshot: Mapping[str, Any]
    example_movement: Movement
    example_dead_letter: Mapping[str, Any]

    @property
    def topics(self) -> DocumentTopics:
        return DocumentTopics.for_family(self.name)

    def event_types(self) -> list[str]:
        """Every event type it publishes, from the members of its event union."""
        union = get_args(self.event)[0]
        return [get_args(m.model_fields["type"].annotation)[0] for m in get_args(union)]


PURCHASE_ORDER_CONTRACT = FamilyContract(
    name=PURCHASE_ORDERS,
    id_field="purchase_order_id",
    key="the purchase_order_id",
    command=po.PurchaseOrderCommand,
    event=po.PurchaseOrderEvent,
    rejection=po.PurchaseOrderRejection,
    preview=previews.PurchaseOrderPreview,
    state=PurchaseOrderState,
    type_prefix="purchase_order",
    example_document="PO-1001",
    example_statuses=("draft", "open"),
    example_snapshot={
        "supplier_id": "SUP-1",
        "warehouse_id": "WH-1",
        "products": [{"sku": "WIDGET-001", "quantity": 100, "cost": "9.99"}],
        "currency_code": "USD",
        "status": "open",
    },
    example_movement=Movement("WH-1", "WIDGET-001", Bucket.INCOMING, 100),
    # Not sealed: purchase-order commands carry no personal data.
    example_dead_letter={
        "summary": "A command that could not be read, as it arrived.",
        "payload": '{"command_id":"3f0c8a52-6a1e-4d43-9f55-0d3e1b7c2a10",'
        '"type":"purchase_order.change_status","tenant_id":"tenant-a",'
        '"purchase_order_id":"PO-1001","payload":{"status":"opened"}}',
        "headers": {
            TRACEPARENT: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            DEAD_LETTER_REASON: "invalid_request: payload.status: Input should be 'draft',"
            " 'open', 'receiving', 'received', 'closed' or 'cancelled'",
            DEAD_LETTER_SOURCE: "purchase-orders.commands/2/118@1736933400000",
        },
        "key": "PO-1001",
    },
)
ORDER_CONTRACT = FamilyContract(
    name=ORDERS,
    id_field="order_id",
    key="the order_id (the customer_id of customer.redact and customer.redacted)",
    command=orders.OrderCommand,
    event=orders.OrderEvent,
    rejection=orders.OrderRejection,
    preview=previews.OrderPreview,
    state=OrderState,
    type_prefix="order",
    example_document="O-2001",
    example_statuses=("placed", "ready"),
    example_snapshot={
        "customer_id": "CUST-1",
        "warehouse_id": "WH-1",
        "status": "ready",
        "items": [{"sku": "MUG-RED", "quantity": 2, "unit_price": "12.50", "currency": "EUR"}],
        "total": "25.00",
        "currency": "EUR",
        "voucher_code": None,
    },
    example_movement=Movement("WH-1", "MUG-RED", Bucket.RESERVED, 2),
    # Sealed: a customer-order command may carry names and addresses.
    example_dead_letter={
        "summary": "A sealed letter: the received key, headers and value, encrypted"
        " (AES-GCM, nonce first; shown base64) under the key named in the headers.",
        "payload": "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0VniQEjRW",
        "headers": {
            DEAD_LETTER_REASON: "invalid_request: payload.status: Input should be 'placed',"
            " 'ready', 'fulfilled', 'sent', 'delivered' or 'cancelled'",
            DEAD_LETTER_SOURCE: "orders.commands/0/57@1736933400000",
            DEAD_LETTER_KEY: "6c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5",
        },
        "key": "orders.commands/0/57@1736933400000",
    },
)
FAMILIES = (PURCHASE_ORDER_CONTRACT, ORDER_CONTRACT)


def declare_family(broker: KafkaBroker, family: FamilyContract) -> None:
    topics = family.topics

    async def consume(message: Any) -> None:
        """Every command gets exactly one outcome: its events, or one rejection."""

    consume.__annotations__ = {"message": family.command, "return": None}
    broker.subscriber(
        topics.commands,
        title=topics.commands,
        description=f"Commands about {family.name.replace('-', ' ')}.",
    )(consume)
    broker.publisher(
        topics.events,
        title=topics.events,
        description=(
            "What changed, one event per document version, in version order per key. Each is a"
            " CloudEvent in binary content mode (ce_* headers; the value is the event)."
        ),
        schema=family.event,
    )
    broker.publisher(
        topics.rejections,
        title=topics.rejections,
        description="Commands that changed nothing, with every problem found.",
        schema=family.rejection,
    )
    broker.publisher(
        topics.previews,
        title=topics.previews,
        description=(
            "What a command sent with dry_run would do now: would_accept, the events and"
            " inventory movements it would cause, every error it would get. Nothing was written;"
            " consumers of events never see previews."
        ),
        schema=family.preview,
    )
    broker.publisher(
        topics.dead_letters,
        title=topics.dead_letters,
        description=(
            "Commands that could not be read or processed, with the key, value and headers they"
            " arrived with (the authorization header removed; customer orders: sealed, see the"
            " README), and the service's own x-dead-letter-* headers, signed."
        ),
        schema=bytes,
    )
    broker.publisher(
        topics.state,
        title=topics.state,
        description=(
            "Each document's current state after every accepted change, in version order per"
            " key, on a compacted topic (cleanup.policy=compact). A null value (tombstone) says"
            " the document can no longer be shown (deleted; customer orders: personal data"
            " erased); nothing follows it for that key."
        ),
        schema=family.state | None,
    )
