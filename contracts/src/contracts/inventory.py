"""Stock movements on inventory.movements, keyed tenant_id/warehouse_id/sku.

Summing every movement of a (tenant, warehouse, sku, bucket) gives exactly the stock the orders
imply, so inventory systems never re-derive the order state machines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StrictInt

from contracts.common import Identifier, WireModel


class MovementSource(WireModel):
    type: Literal["purchase_order", "order"]
    id: Identifier
    version: int = Field(description="The document version whose change caused the movement.")
    event_id: UUID


class InventoryMovement(WireModel):
    movement_id: UUID = Field(description="Stable per event, bucket and stock item.")
    tenant_id: Identifier
    warehouse_id: Identifier
    sku: Identifier
    bucket: Literal["incoming", "on_hand", "reserved"]
    quantity: Annotated[StrictInt, Field(description="Signed; never zero.")]
    reason: str = Field(description="The type of the event that caused the movement.")
    source: MovementSource
    occurred_at: datetime


def movement_key(tenant_id: str, warehouse_id: str, sku: str) -> str:
    return f"{tenant_id}/{warehouse_id}/{sku}"
