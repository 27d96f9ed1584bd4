"""What the use cases need from storage; the Postgres adapter implements it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from service.domain import orders
from service.domain import purchase_orders as po


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
    """A message to publish. Key, value and headers are bytes: a dead letter carries what it
    arrived with, whatever that holds."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    command_id: UUID
    event_id: UUID
    event_type: str
    snapshot: bytes


class PurchaseOrderRepository(Protocol):
    async def load(self, tenant_id: str, purchase_order_id: str) -> po.State | None:
        """The live order, its tombstone if it was deleted, or None if it never existed."""

    async def save(
        self, order: po.PurchaseOrder, snapshot: bytes, history: Sequence[HistoryEntry]
    ) -> None: ...

    async def delete(self, tombstone: po.DeletedPurchaseOrder) -> None:
        """Remove the order and its history for good, leaving only the tombstone."""


class OrderRepository(Protocol):
    async def load(self, tenant_id: str, order_id: str) -> orders.State | None:
        """The live order with its items and addresses, its tombstone, or None."""

    async def voucher_holder(self, tenant_id: str, voucher_code: str) -> str | None:
        """Lock the voucher for this transaction and return the live order holding it, if any."""

    async def lock_customer(self, tenant_id: str, customer_id: str) -> None:
        """Serialise an erasure of the customer with writes of their personal data."""

    async def customer_erased(self, tenant_id: str, customer_id: str) -> bool:
        """Whether the customer was erased; locks the customer until commit."""

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        """The ids of the customer's live orders in the tenant."""

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        """Destroy the keys of dead letters that named the customer; returns how many."""

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        """Mark the customer erased; returns how many redactions they have had."""

    async def save(
        self,
        order: orders.Order,
        history: Sequence[HistoryEntry],
        previous: orders.Order | None,
    ) -> None:
        """Write the order, its items, its voucher and (encrypted) its personal data; groups
        unchanged since `previous` keep their records, groups newly redacted lose their keys."""

    async def delete(self, tombstone: orders.DeletedOrder) -> None:
        """Remove the order, its items and history, free its voucher, shred its personal data."""


class UnitOfWork(Protocol):
    """One database transaction; nothing is visible to others until it commits."""

    @property
    def purchase_orders(self) -> PurchaseOrderRepository: ...

    @property
    def orders(self) -> OrderRepository: ...

    async def claim(self, message_key: str, request_hash: bytes) -> Claim:
        """Record the key in the inbox; a concurrent claim of the same key waits for this one."""

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        """Record one reuse of a key with this content; False if already answered."""

    async def lock_document(self, tenant_id: str, document_id: str) -> None:
        """Serialise all work on one document, including documents that do not exist yet."""

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        """Serialise writers of the same stock items, so their movements queue in commit order."""

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None
    ) -> tuple[UUID, bytes]:
        """Seal a dead letter under its own key with a retention; (key id, sealed bytes)."""

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """Queue messages for publication once this transaction commits."""

    async def answer(
        self, message_key: str, outcome: Outcome, messages: Sequence[OutboxMessage]
    ) -> None:
        """Record the outcome of a claimed key and queue the messages that carry it."""


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...
