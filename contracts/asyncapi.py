"""The AsyncAPI document of the wire contract, built with FastStream from the pydantic models.

The broker here only describes channels and messages; nothing connects or consumes.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from contracts.inventory import InventoryMovement
from contracts.purchase_orders import (
    PurchaseOrderCommand,
    PurchaseOrderEvent,
    PurchaseOrderRejection,
)
from contracts.topics import INVENTORY_MOVEMENTS, PURCHASE_ORDERS, DocumentTopics

TITLE = "Order lifecycle service"
VERSION = "0.1.0"


def specification() -> dict[str, Any]:
    broker = KafkaBroker("localhost:9092", description="Kafka key = the document id.")
    topics = DocumentTopics.for_family(PURCHASE_ORDERS)

    @broker.subscriber(
        topics.commands,
        title=topics.commands,
        description="Commands about purchase orders; key = purchase_order_id.",
    )
    async def purchase_order_commands(command: PurchaseOrderCommand) -> None:
        """Every command gets exactly one outcome: its events, or one rejection."""

    broker.publisher(
        topics.events,
        title=topics.events,
        description="What changed, one event per document version, in version order per key.",
        schema=PurchaseOrderEvent,
    )
    broker.publisher(
        topics.rejections,
        title=topics.rejections,
        description="Commands that changed nothing, with every problem found.",
        schema=PurchaseOrderRejection,
    )
    broker.publisher(
        topics.dead_letters,
        title=topics.dead_letters,
        description=(
            "The raw bytes of commands that could not be read or processed. Headers:"
            " x-dead-letter-reason (why), x-dead-letter-source (topic/partition/offset@timestamp)."
        ),
        schema=bytes,
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
    return result
