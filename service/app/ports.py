"""What the use cases need from storage; the Postgres adapter implements it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from service.domain.purchase_orders import DeletedPurchaseOrder, PurchaseOrder, State


class Claim(StrEnum):
    """What the inbox says about a message key."""

    NEW = "new"
    DUPLICATE = "duplicate"
    """Seen before with the same content: already answered, do nothing."""
    REUSED = "reused"
    """Seen before with different content: the key was reused for another request."""


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    PARKED = "parked"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    command_id: UUID
    event_id: UUID
    event_type: str
    snapshot: bytes


class UnitOfWork(Protocol):
    """One database transaction; nothing is visible to others until it commits."""

    async def claim(self, message_key: str, request_hash: bytes) -> Claim:
        """Record the key in the inbox; a concurrent claim of the same key waits for this one."""

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        """Record one reuse of a key with this content; False if already answered."""

    async def lock_document(self, tenant_id: str, document_id: str) -> None:
        """Serialise all work on one document, including documents that do not exist yet."""

    async def load_purchase_order(self, tenant_id: str, purchase_order_id: str) -> State | None:
        """The live order, its tombstone if it was deleted, or None if it never existed."""

    async def save_purchase_order(
        self, order: PurchaseOrder, snapshot: bytes, history: Sequence[HistoryEntry]
    ) -> None: ...

    async def delete_purchase_order(self, tombstone: DeletedPurchaseOrder) -> None:
        """Remove the order and its history for good, leaving only the tombstone."""

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        """Serialise writers of the same stock items, so their movements queue in commit order."""

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """Queue messages for publication once this transaction commits."""

    async def answer(
        self, message_key: str, outcome: Outcome, messages: Sequence[OutboxMessage]
    ) -> None:
        """Record the outcome of a claimed key and queue the messages that carry it."""


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...
