"""Previews: what a command sent with `"dry_run": true` would do now. Nothing was written: no
state, no history, no inbox entry, no movement. Previews go to their own topics, so consumers
of events never see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from contracts.common import ErrorDetail, WireModel
from contracts.inventory import InventoryMovement


class PreviewEvent(WireModel):
    type: str
    version: int
    data: dict[str, Any] | None = Field(
        default=None, description="The event's data as it would be published."
    )


class PreviewMetadata(WireModel):
    """Shared by the previews of every family; each adds its document id field."""

    command_id: UUID
    type: str
    tenant_id: str
    would_accept: bool
    events: list[PreviewEvent] = Field(description="Every event it would publish, in order.")
    movements: list[InventoryMovement] = Field(
        description="Every inventory movement it would cause (reservations released, stock"
        " received, ...)."
    )
    errors: list[ErrorDetail] = Field(
        description="Every problem it would be refused for: the errors of the real rejection."
    )
    previewed_at: datetime


class PurchaseOrderPreview(PreviewMetadata):
    purchase_order_id: str


class OrderPreview(PreviewMetadata):
    order_id: str | None = None
    customer_id: str | None = Field(default=None, description="Set for customer.redact.")
