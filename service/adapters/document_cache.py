"""Documents kept as JSON that this process has seen committed, decoded, by version.

A document's state at a version is fixed once that version commits: each version is written
once, by the one transaction that holds the document's lock, and a deletion ends the document
for good (a tombstone keeps its last version). So a batch that finds a document at a version
held here takes its state from here, and Postgres sends no snapshot for it. A version that
another instance wrote meanwhile, or one this process wrote and rolled back, is not the one
held here, and is read as ever.

Only what committed goes in: what a transaction loaded and saved is kept back until it commits
(a load may see the transaction's own writes), and dropped if it does not. Only documents
stored as JSON are held; they carry no personal data (orders, which do, have a store of their
own, and none of it is held here, so an erasure has nothing to reach in this process).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from service.app.ports import DocumentKey

CachedKey = tuple[str, str, str]
"""(kind, tenant_id, document_id)."""


class CommittedDocuments:
    """The states of up to `capacity` documents, least recently used first out; 0 holds none."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._held: OrderedDict[CachedKey, tuple[int, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def lookup(self, kind: str, keys: Sequence[DocumentKey]) -> dict[DocumentKey, tuple[int, Any]]:
        """The (version, state) held for each of `keys` that has one."""
        held = self._held
        if not held:
            return {}
        found: dict[DocumentKey, tuple[int, Any]] = {}
        for tenant_id, document_id in keys:
            entry = held.get((kind, tenant_id, document_id))
            if entry is not None:
                held.move_to_end((kind, tenant_id, document_id))
                found[(tenant_id, document_id)] = entry
        return found

    def remember(self, kind: str, states: Iterable[tuple[DocumentKey, int, Any]]) -> None:
        """Committed states, each at its version; a later one of a document replaces it."""
        if self._capacity == 0:
            return
        held = self._held
        for (tenant_id, document_id), version, state in states:
            key = (kind, tenant_id, document_id)
            earlier = held.get(key)
            if earlier is None or earlier[0] < version:  # a transaction that read an older one
                held[key] = (version, state)  # may commit after the one that wrote this one
            held.move_to_end(key)
        while len(held) > self._capacity:
            held.popitem(last=False)

    def forget(self, kind: str, keys: Iterable[DocumentKey]) -> None:
        for tenant_id, document_id in keys:
            self._held.pop((kind, tenant_id, document_id), None)
