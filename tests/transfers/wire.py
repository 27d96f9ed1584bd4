"""The transfer family's messages, built from the contract's shared blocks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, TypeAdapter

from contracts.common import (
    CommandMetadata,
    EventMetadata,
    Identifier,
    NoPayload,
    RejectionMetadata,
    WireModel,
)
from contracts.previews import PreviewMetadata


class TransferDetails(WireModel):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(gt=0, le=1_000_000)]
    from_warehouse_id: Identifier
    to_warehouse_id: Identifier


class RequestTransfer(CommandMetadata):
    type: Literal["transfer.request"]
    transfer_id: Identifier
    payload: TransferDetails


class ShipTransfer(CommandMetadata):
    type: Literal["transfer.ship"]
    transfer_id: Identifier
    payload: NoPayload = NoPayload()


TransferCommandMessage = RequestTransfer | ShipTransfer
TRANSFER_COMMAND: TypeAdapter[TransferCommandMessage] = TypeAdapter(
    Annotated[TransferCommandMessage, Field(discriminator="type")]
)


class TransferSnapshot(TransferDetails):
    status: Literal["requested", "shipped"]


class TransferRequested(EventMetadata):
    type: Literal["transfer.requested"]
    transfer_id: Identifier
    data: TransferSnapshot


class TransferShipped(EventMetadata):
    type: Literal["transfer.shipped"]
    transfer_id: Identifier
    data: TransferSnapshot


class TransferRejection(RejectionMetadata):
    transfer_id: str | None


class TransferPreview(PreviewMetadata):
    transfer_id: str
