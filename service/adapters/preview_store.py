"""The unit of work a dry run is decided through: it reads Postgres like any other and writes
nothing, not even inside a transaction that is rolled back.

A rolled-back write is not gone: its rows reach the WAL (and any archive of it) as they are
inserted, so a preview decided by writing would leave the personal data it was sent, sealed,
with wrapped data keys that no erasure knows to destroy (I6). Here every write the deciders
make does nothing, and the writes whose answer the deciders use are answered from reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, NoReturn, TypeVar
from uuid import UUID

import asyncpg

from service.adapters.personal_data import count_dead_letters_of_customer
from service.app.orders.ports import OrderRepository, refuse_unopened_changes
from service.app.ports import (
    Answer,
    Changes,
    Claim,
    DocumentKey,
    DocumentKind,
    DocumentRepository,
    OutboxMessage,
    StoredAnswer,
    UnitOfWork,
)
from service.domain import orders
from service.domain.documents import Document

S = TypeVar("S", bound=Document)


class WriteInPreviewError(RuntimeError):
    """A preview reached a write no decider makes: a programming error; nothing was written."""


def _refuse(what: str) -> NoReturn:
    raise WriteInPreviewError(f"{what} writes, and a preview writes nothing")


class ReadOnlyDocuments(Generic[S]):
    """Loads like the real repository; saving does nothing."""

    def __init__(self, reads: DocumentRepository[S]) -> None:
        self._reads = reads

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, S]:
        return await self._reads.load_many(keys, personal_data=personal_data)

    async def save_many(self, changes: Changes[S]) -> None:
        return None


class PreviewOrders:
    def __init__(self, conn: asyncpg.Connection, reads: OrderRepository) -> None:
        self._conn = conn
        self._reads = reads

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, orders.State]:
        return await self._reads.load_many(keys, personal_data=personal_data)

    async def voucher_holders(
        self, vouchers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        return await self._reads.voucher_holders(vouchers)

    async def lock_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        await self._reads.lock_customers(customers)

    async def erased_customers(self, customers: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return await self._reads.erased_customers(customers)

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        return await self._reads.orders_of_customer(tenant_id, customer_id)

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        # How many the erasure would destroy, for its receipt.
        return await count_dead_letters_of_customer(self._conn, tenant_id, customer_id)

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        # The receipt's version: the redactions recorded so far, and this one.
        recorded: int = await self._conn.fetchval(
            "SELECT coalesce(max(redactions), 0) + 1 FROM erased_customers"
            " WHERE tenant_id = $1 AND customer_id = $2",
            tenant_id,
            customer_id,
        )
        return recorded

    async def save_many(self, changes: Changes[orders.State]) -> None:
        # Sealing would write the personal data and make data keys: the very thing to avoid.
        # What the real save would refuse, the preview refuses too.
        refuse_unopened_changes(changes)


class PreviewUnitOfWork:
    """Reads through `reads`, a unit of work on the same connection; writes nothing. Deciders
    only load, lock and save documents: the inbox, the outbox, tokens and dead letters belong
    to the processor, so reaching them from here is a bug, and it says so."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        reads: UnitOfWork,
        previews: Mapping[str, Callable[[asyncpg.Connection, Any], Any]],
    ) -> None:
        self._conn = conn
        self._reads = reads
        self._previews = previews
        """Per kind kept in tables of its own, its preview repository (see dedicated.py)."""

    def documents(self, kind: DocumentKind[S]) -> DocumentRepository[S]:
        reads = self._reads.documents(kind)
        preview = self._previews.get(kind.name)
        repository: DocumentRepository[S] = (
            preview(self._conn, reads) if preview is not None else ReadOnlyDocuments(reads)
        )
        return repository

    def previewing(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return self._reads.previewing()

    async def stored_request_hashes(self, keys: Sequence[str]) -> dict[str, bytes]:
        return await self._reads.stored_request_hashes(keys)

    async def stored_answers(self, keys: Sequence[str]) -> dict[str, StoredAnswer]:
        return await self._reads.stored_answers(keys)

    async def lock_documents(self, documents: Sequence[tuple[str, str]]) -> None:
        # Advisory locks write nothing. Taken as the real command would take them, they make a
        # preview wait for a batch writing the same documents, and read what it left.
        await self._reads.lock_documents(documents)

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        await self._reads.lock_stock_items(keys)

    async def claim_many(self, keys: Sequence[tuple[str, bytes]]) -> list[Claim]:
        _refuse("claiming inbox keys")

    async def reopen_for_replay(self, keys: Sequence[str]) -> None:
        _refuse("reopening inbox keys")

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        _refuse("recording a reused key")

    async def bind_tokens(self, uses: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
        _refuse("binding tokens")

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None, order_id: str | None
    ) -> tuple[UUID, bytes]:
        _refuse("sealing a dead letter")

    async def answer_many(
        self, answers: Sequence[Answer], extra: Sequence[OutboxMessage] = ()
    ) -> None:
        _refuse("queueing messages")
