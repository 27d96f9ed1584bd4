"""The board: every live document's current state, kept from state messages and events by the
consistency rule in this package's docstring. Pure: it parses records with the contract's models
and knows nothing of Kafka connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import orders as o
from contracts import purchase_orders as po
from contracts.state import OrderState, PurchaseOrderState, state_key
from contracts.topics import ORDERS, PURCHASE_ORDERS

Snapshot = po.PurchaseOrderSnapshot | o.OrderSnapshot
BoardKey = tuple[str, str]
"""(family, state key): the state key alone is `<tenant_id>/<document id>`, and the two
families' ids may overlap."""


@dataclass(frozen=True)
class Family:
    """How the board reads one family's records."""

    state: type[PurchaseOrderState] | type[OrderState]
    events: TypeAdapter[Any]
    id_field: str


FAMILIES: dict[str, Family] = {
    PURCHASE_ORDERS: Family(PurchaseOrderState, po.PURCHASE_ORDER_EVENT, "purchase_order_id"),
    ORDERS: Family(OrderState, o.ORDER_EVENT, "order_id"),
}

_GONE = (po.PurchaseOrderDeleted, o.OrderDeleted, o.OrderRedacted)
"""Events after which the service never shows the document again: its deletion, and (customer
orders) the erasure of any of its personal data, when it runs."""


@dataclass(frozen=True)
class Entry:
    """A document exactly as it was after its `version`-th change."""

    tenant_id: str
    document_id: str
    version: int
    event_type: str
    """The change that produced this version."""
    snapshot: Snapshot


@dataclass(frozen=True)
class Change:
    """What one record did to the board; `entry` None: the document is gone for good."""

    family: str
    key: str
    entry: Entry | None


@dataclass
class Board:
    entries: dict[BoardKey, Entry] = field(default_factory=dict)
    gone: set[BoardKey] = field(default_factory=set)
    """Deleted or erased: never shown again, whatever older record arrives later."""
    behind: set[BoardKey] = field(default_factory=set)
    """A newer change was seen that events alone cannot apply (a receipt, say); the entry
    stays at its version until the state topic brings the next one."""
    skipped: int = 0
    """Records that were not a message of the contract (or of a type this board does not
    know, which a minor version may add): passed over."""

    def apply_state(self, family: str, key: bytes, value: bytes | None) -> Change | None:
        """A record of a state topic: a state replaces an older one; a tombstone removes."""
        at = (family, key.decode())
        if value is None:
            return self._remove(at)
        if at in self.gone:
            return None
        try:
            # Fields a later minor version adds are ignored, as the contract lets readers do.
            state = FAMILIES[family].state.model_validate_json(value, extra="ignore")
        except ValidationError:
            self.skipped += 1
            return None
        held = self.entries.get(at)
        if held is not None and state.version <= held.version:
            return None
        document_id = getattr(state, FAMILIES[family].id_field)
        entry = Entry(state.tenant_id, document_id, state.version, state.event_type, state.snapshot)
        return self._set(family, at, entry)

    def apply_event(self, family: str, value: bytes | None) -> Change | None:
        """A record of an events topic: applied when it is newer than what the board holds and
        says enough to give the whole document at its version."""
        reader = FAMILIES[family]
        try:
            event = reader.events.validate_json(value or b"", extra="ignore")
        except ValidationError:
            self.skipped += 1
            return None
        document_id = getattr(event, reader.id_field, None)
        if document_id is None:  # customer.redacted: a receipt, keyed by the customer
            return None
        at = (family, state_key(event.tenant_id, document_id))
        if at in self.gone:
            return None
        if isinstance(event, _GONE):
            return self._remove(at)
        held = self.entries.get(at)
        if event.version <= (held.version if held is not None else 0):
            return None  # a version the board has (a redelivery, or the state came first)
        snapshot = _derived(event, held)
        if snapshot is None:
            self.behind.add(at)
            return None
        entry = Entry(event.tenant_id, document_id, event.version, event.type, snapshot)
        return self._set(family, at, entry)

    def documents(self, family: str) -> dict[str, Entry]:
        """The family's live documents, by state key."""
        return {key: entry for (name, key), entry in self.entries.items() if name == family}

    def _set(self, family: str, at: BoardKey, entry: Entry) -> Change:
        self.entries[at] = entry
        self.behind.discard(at)
        return Change(family, at[1], entry)

    def _remove(self, at: BoardKey) -> Change | None:
        self.behind.discard(at)
        self.entries.pop(at, None)
        if at in self.gone:
            return None
        self.gone.add(at)
        return Change(at[0], at[1], None)


def _derived(event: BaseModel, held: Entry | None) -> Snapshot | None:
    """The whole document after `event`, when the event says enough: it carries the document
    (created, updated), or it is the very next version and changes only what it names (a
    status change, a scheduled redaction). None otherwise."""
    match event:
        case po.PurchaseOrderCreated(data=data) | po.PurchaseOrderUpdated(data=data):
            return data
        case o.OrderCreated(data=data):
            return data
        case o.OrderUpdated(data=o.OrderUpdateData(order=data)):
            return data
    if held is None or getattr(event, "version", 0) != held.version + 1:
        return None
    match event:
        case po.PurchaseOrderStatusChanged(data=po.StatusChangeData(to_status=status)):
            return held.snapshot.model_copy(update={"status": status})
        case o.OrderStatusChanged(data=o.OrderStatusChangeData(to_status=status)):
            return held.snapshot.model_copy(update={"status": status})
        case o.OrderRedactionScheduled():
            return held.snapshot  # nothing a state shows changes until the redaction runs
    return None
