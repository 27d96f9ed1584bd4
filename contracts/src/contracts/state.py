"""Current states on the compacted `<family>.state` topics, keyed `<tenant_id>/<document id>`
(see `state_key`).

After every accepted change the service publishes the document as it is now: one message per
version, after the event of that version and in version order per key, so a topic compacted by
Kafka (`cleanup.policy=compact`) keeps each document's latest state and a consumer that reads it
to the end knows every live document without replaying history.

A record with the same key and a null value (a tombstone) says the document can no longer be
shown: it was deleted, or (customer orders) some of its personal data was erased (`order.redact`,
`customer.redact`, or a scheduled redaction when it runs). After a tombstone no state of that
document is ever published again; compaction then drops the key. A redaction that is only
scheduled changes nothing here until it runs.

The snapshot is the one events carry (`PurchaseOrderSnapshot`, `OrderSnapshot`): no names,
addresses, phones or emails, ever.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field

from contracts.common import Identifier, WireModel
from contracts.orders import OrderSnapshot
from contracts.purchase_orders import PurchaseOrderSnapshot


class StateMetadata(WireModel):
    """What every state message carries besides its document id and snapshot."""

    tenant_id: Identifier
    version: Annotated[int, Field(ge=1)] = Field(
        description="The document version this state is: every event up to it is applied."
    )
    event_id: UUID = Field(description="The event of the change that produced this version.")
    event_type: str = Field(description="That event's type, e.g. 'order.status_changed'.")
    updated_at: datetime = Field(description="When that change happened (the event's time).")


class PurchaseOrderState(StateMetadata):
    """A purchase order as it is after its latest change, on `purchase-orders.state`."""

    purchase_order_id: Identifier
    snapshot: PurchaseOrderSnapshot


class OrderState(StateMetadata):
    """A customer order as it is after its latest change, on `orders.state`; never personal
    data, and nothing at all once any of it was erased (a tombstone instead)."""

    order_id: Identifier
    snapshot: OrderSnapshot


def state_key(tenant_id: str, document_id: str) -> str:
    """The Kafka key of a document's states, `<tenant_id>/<document id>`. The tenant is part
    of it: compaction keeps one record per key, and two tenants may use the same document id.
    Identifiers may hold '/' (never '%'), so a '/' inside either is written '%2F': otherwise
    tenant 'a/b' with document 'c' and tenant 'a' with document 'b/c' would share a key, and
    compaction (or a tombstone) would take one document's state for the other's."""
    return f"{_escaped(tenant_id)}/{_escaped(document_id)}"


def _escaped(identifier: str) -> str:
    return identifier.replace("/", "%2F")
