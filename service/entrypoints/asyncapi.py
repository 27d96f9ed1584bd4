"""The AsyncAPI document of the wire contract, built with FastStream from the pydantic models.

The broker here only describes channels and messages; nothing connects or consumes.
"""

from __future__ import annotations

from typing import Any

from contracts.headers import (
    AUTHORIZATION,
    BEARER_SCHEME,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    EVENT_TYPE,
    REPLAYED_FROM,
    TRACEPARENT,
    TRACESTATE,
)
from contracts.inventory import InventoryMovement
from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

import contracts
from contracts import orders, previews
from contracts import purchase_orders as po

TITLE = "Order lifecycle service"
VERSION = contracts.__version__


def specification() -> dict[str, Any]:
    broker = KafkaBroker("localhost:9092", description="Kafka key = the document id.")
    _family(
        broker,
        PURCHASE_ORDERS,
        "purchase_order_id",
        po.PurchaseOrderCommand,
        po.PurchaseOrderEvent,
        po.PurchaseOrderRejection,
        previews.PurchaseOrderPreview,
    )
    _family(
        broker,
        ORDERS,
        "order_id",
        orders.OrderCommand,
        orders.OrderEvent,
        orders.OrderRejection,
        previews.OrderPreview,
    )
    broker.publisher(
        INVENTORY_MOVEMENTS,
        title=INVENTORY_MOVEMENTS,
        description=(
            "One signed stock movement per sku and bucket for each accepted change that affects"
            " stock; key = tenant_id/warehouse_id/sku. Summing them gives the stock the orders"
            " imply."
        ),
        schema=InventoryMovement,
    )
    spec = AsyncAPI(
        broker,
        title=TITLE,
        version=VERSION,
        description="Commands about purchase orders and customer orders, and their outcomes.",
    )
    result: dict[str, Any] = spec.to_specification().to_jsonable()
    messages = result["components"]["messages"]
    for name, message in messages.items():
        if name.endswith(".commands:SubscribeMessage"):
            message["headers"] = COMMAND_HEADERS
        elif not name.endswith(".dlq:Message"):
            message["headers"] = OUTCOME_HEADERS
    return result


_TRACE_CONTEXT = {
    TRACEPARENT: {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "W3C trace context; carried from a command to every one of its answers.",
    },
    TRACESTATE: {"type": "string", "maxLength": 512, "description": "W3C trace state."},
}
COMMAND_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        AUTHORIZATION: {
            "type": "string",
            "pattern": f"^{BEARER_SCHEME} [A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$",
            "description": "The sender's actor token (JWT), checked as AUTH_MODE says. Never"
            " stored, logged or echoed.",
        },
        **_TRACE_CONTEXT,
        REPLAYED_FROM: {
            "type": "string",
            "description": "Set by `order-service dead-letters replay`: the dead letter's"
            " topic/partition/offset.",
        },
    },
}
OUTCOME_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        EVENT_TYPE: {"type": "string", "description": "Events only: their type."},
        **_TRACE_CONTEXT,
    },
}


def _family(
    broker: KafkaBroker,
    family: str,
    id_field: str,
    command: Any,
    event: Any,
    rejection: Any,
    preview: Any,
) -> None:
    topics = DocumentTopics.for_family(family)

    async def consume(message: Any) -> None:
        """Every command gets exactly one outcome: its events, or one rejection."""

    consume.__annotations__ = {"message": command, "return": None}
    broker.subscriber(
        topics.commands,
        title=topics.commands,
        description=f"Commands about {family.replace('-', ' ')}; key = {id_field}.",
    )(consume)
    broker.publisher(
        topics.events,
        title=topics.events,
        description="What changed, one event per document version, in version order per key.",
        schema=event,
    )
    broker.publisher(
        topics.rejections,
        title=topics.rejections,
        description="Commands that changed nothing, with every problem found.",
        schema=rejection,
    )
    broker.publisher(
        topics.previews,
        title=topics.previews,
        description=(
            "What a command sent with dry_run would do now: would_accept, the events and"
            " inventory movements it would cause, every error it would get. Nothing was written;"
            " consumers of events never see previews."
        ),
        schema=preview,
    )
    broker.publisher(
        topics.dead_letters,
        title=topics.dead_letters,
        description=(
            "Commands that could not be read or processed, with the key, value and headers they"
            " arrived with (customer orders: sealed, see the README). Added headers, ASCII with"
            f" backslash escapes: {DEAD_LETTER_REASON} (why), {DEAD_LETTER_SOURCE}"
            " (topic/partition/offset@timestamp)."
        ),
        schema=bytes,
    )
