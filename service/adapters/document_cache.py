"""Documents kept as JSON that this process has seen committed, decoded, each with the event
that made its version.

A batch that finds a document still at the version and event held here takes its state from
here, and Postgres sends no snapshot for it. The state after an event is fixed once it commits
(one transaction, holding the document's lock, writes it), and an event id is a random UUID,
whereas a version number alone can come back with other content when Postgres loses committed
transactions (a failover with asynchronous replication, a restore to a point in time). A
version that another instance wrote meanwhile, or one that rolled back, is not the one held
here, and is read as ever.

Only what committed goes in: what a transaction loaded and saved is kept back until it commits
(a load may see the transaction's own writes), and dropped if it does not. Only documents
stored as JSON are held; they carry no personal data (orders, which do, have a store of their
own, and none of it is held here, so an erasure has nothing to reach in this process).

The budget is in bytes of the documents' JSON, each weighed by its snapshot's length, so that
orders of many lines (a create may be 256 KiB) cannot grow the process without bound; held, a
state takes about 2.3 to 2.8 times its JSON (a one-line purchase order: 425 bytes, about 1 KB
held). A document read from Postgres weighs its jsonb text, which is a little longer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from service.app.ports import DocumentKey
from service.domain.values import frozen

HEAVIEST_SHARE = 64
"""A document heavier than this share of the budget is not held: it would push out dozens."""


@frozen
class Held:
    """A committed state: the event that made its version, and its snapshot's length."""

    event_id: UUID
    version: int
    state: Any
    weight: int


class CommittedDocuments:
    """Committed states whose snapshots add up to at most `capacity` bytes, least recently used
    first out; 0 holds none."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._heaviest = capacity // HEAVIEST_SHARE
        self._held: OrderedDict[tuple[str, str, str], Held] = OrderedDict()
        self._weight = 0

    @property
    def weight(self) -> int:
        """The bytes of JSON held now."""
        return self._weight

    def __len__(self) -> int:
        return len(self._held)

    def status(self) -> dict[str, int]:
        """What /health shows of it: how many documents are held and their weight, against
        the budget and the heaviest document it holds at all."""
        return {
            "documents": len(self._held),
            "bytes": self._weight,
            "capacity_bytes": self._capacity,
            "heaviest_held_bytes": self._heaviest,
        }

    def lookup(self, kind: str, keys: Sequence[DocumentKey]) -> dict[DocumentKey, Held]:
        """What is held of each of `keys` that has anything held."""
        held = self._held
        if not held:
            return {}
        found: dict[DocumentKey, Held] = {}
        for tenant_id, document_id in keys:
            entry = held.get((kind, tenant_id, document_id))
            if entry is not None:
                held.move_to_end((kind, tenant_id, document_id))
                found[(tenant_id, document_id)] = entry
        return found

    def remember(self, kind: str, seen: Iterable[tuple[DocumentKey, Held | None]]) -> None:
        """What a committed transaction saw of documents, in order: a state to hold, or None
        for one not to hold (deleted, or its row names no event). Of two states at one version,
        the later replaces the earlier (Postgres lost the commit of the first); an earlier
        version never replaces a later one (a transaction that read it may commit after the one
        that wrote the later)."""
        held = self._held
        for (tenant_id, document_id), entry in seen:
            key = (kind, tenant_id, document_id)
            if entry is None:
                self.forget(kind, [(tenant_id, document_id)])
                continue
            earlier = held.get(key)
            if earlier is not None:
                if earlier.version > entry.version:
                    held.move_to_end(key)
                    continue
                del held[key]
                self._weight -= earlier.weight
            if entry.weight <= self._heaviest:
                held[key] = entry
                self._weight += entry.weight
        while self._weight > self._capacity:
            _, evicted = held.popitem(last=False)
            self._weight -= evicted.weight

    def forget(self, kind: str, keys: Iterable[DocumentKey]) -> None:
        for tenant_id, document_id in keys:
            entry = self._held.pop((kind, tenant_id, document_id), None)
            if entry is not None:
                self._weight -= entry.weight
