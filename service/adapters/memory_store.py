"""The storage ports in memory: the same behaviour as the Postgres store, for deciding batches in
unit tests in milliseconds (and for trying a family's rules without a database).

A unit of work is a transaction over a copy of the data: it commits by replacing the data with
its copy, and a failure discards the copy. Units of work run one at a time, as if every one took
every lock, so locking is trivially right. The shared store contract tests
(tests/integration/test_store_contract.py) hold both stores to the same behaviour.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from contracts.topics import ORDERS
from service.adapters.preview_store import WriteInPreviewError
from service.app.orders.ports import refuse_unopened_changes
from service.app.ports import (
    Answer,
    Changes,
    Claim,
    DocumentKey,
    DocumentKind,
    DocumentRepository,
    HistoryEntry,
    OutboxMessage,
    StoredAnswer,
    UnitOfWork,
)
from service.domain import orders
from service.domain.documents import Document
from service.errors import ConfigurationError, UnansweredClaimError, VersionSequenceError

S = TypeVar("S", bound=Document)


@dataclass
class DeadLetterRecord:
    tenant_id: str | None
    customer_id: str | None
    order_id: str | None
    raw: bytes


@dataclass
class MemoryData:
    """Everything a store holds."""

    inbox: dict[str, tuple[bytes, str | None, bytes | None]] = field(default_factory=dict)
    """Message key -> (request hash, outcome, reply summary)."""
    reuses: set[tuple[str, bytes]] = field(default_factory=set)
    token_uses: dict[tuple[str, str], str] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)
    documents: dict[str, dict[DocumentKey, Any]] = field(default_factory=dict)
    """Kind -> live documents and tombstones."""
    history: dict[str, dict[DocumentKey, list[HistoryEntry]]] = field(default_factory=dict)
    erased_customers: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letters: dict[UUID, DeadLetterRecord] = field(default_factory=dict)


class MemoryDocuments:
    """Documents of one kind."""

    def __init__(self, data: MemoryData, kind: str) -> None:
        self._kind = kind
        self._states = data.documents.setdefault(kind, {})
        self._history = data.history.setdefault(kind, {})

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, Any]:
        return {key: self._states[key] for key in keys if key in self._states}

    async def save_many(self, changes: Changes[Any]) -> None:
        if wrong := changes.out_of_sequence():
            raise VersionSequenceError(self._kind, wrong)
        for save in changes.saves():
            key = (save.document.tenant_id, save.document.document_id)
            self._states[key] = save.document
            self._history.setdefault(key, []).extend(v.entry for v in save.versions)
        for tombstone in changes.deletions():
            key = (tombstone.tenant_id, tombstone.document_id)
            self._states[key] = tombstone
            self._history.pop(key, None)

    def history(self, key: DocumentKey) -> list[HistoryEntry]:
        return list(self._history.get(key, []))


class MemoryOrders(MemoryDocuments):
    """Customer orders, with the reads and locks only they need."""

    def __init__(self, data: MemoryData) -> None:
        super().__init__(data, ORDERS)
        self._data = data

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, Any]:
        """As in Postgres: loaded sealed, an order's addresses are orders.SEALED."""
        loaded = await super().load_many(keys)
        if personal_data:
            return loaded
        return {
            key: replace(state, details=_sealed(state.details))
            if isinstance(state, orders.Order)
            else state
            for key, state in loaded.items()
        }

    def _live(self) -> list[orders.Order]:
        return [s for s in self._states.values() if isinstance(s, orders.Order)]

    async def voucher_holders(
        self, vouchers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        wanted = set(vouchers)
        held = {
            (order.tenant_id, code): order.order_id
            for order in self._live()
            if (code := orders.held_voucher(order)) is not None
        }
        return {voucher: order_id for voucher, order_id in held.items() if voucher in wanted}

    async def lock_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        return None

    async def erased_customers(self, customers: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return {c for c in customers if c in self._data.erased_customers}

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        return sorted(
            order.order_id
            for order in self._live()
            if order.tenant_id == tenant_id and order.details.customer_id == customer_id
        )

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        doomed = await self._dead_letters_of(tenant_id, customer_id)
        for key_id in doomed:
            del self._data.dead_letters[key_id]
        return len(doomed)

    async def _dead_letters_of(self, tenant_id: str, customer_id: str) -> list[UUID]:
        """The letters about the customer or any live order of theirs."""
        theirs = set(await self.orders_of_customer(tenant_id, customer_id))
        return [
            key_id
            for key_id, letter in self._data.dead_letters.items()
            if letter.tenant_id == tenant_id
            and (letter.customer_id == customer_id or letter.order_id in theirs)
        ]

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        customer = (tenant_id, customer_id)
        self._data.erased_customers[customer] = self._data.erased_customers.get(customer, 0) + 1
        return self._data.erased_customers[customer]

    async def save_many(self, changes: Changes[Any]) -> None:
        refuse_unopened_changes(changes)
        gone = [
            (state.tenant_id, state.order_id)
            for state in changes.final.values()
            if state.is_deleted or state.redacted - _redacted(changes.loaded.get(_key(state)))
        ]
        # As in Postgres: a dead letter holds the whole command as it arrived, so it goes with
        # its order, and with the first group of its order that is erased.
        for key_id, letter in list(self._data.dead_letters.items()):
            if (letter.tenant_id, letter.order_id) in gone:
                del self._data.dead_letters[key_id]
        await super().save_many(_opened_again(changes, self._states))


def _sealed(details: orders.OrderDetails) -> orders.OrderDetails:
    return replace(details, shipping_address=orders.SEALED, billing_address=orders.SEALED)


def _opened_again(changes: Changes[Any], stored: dict[DocumentKey, Any]) -> Changes[Any]:
    """The changes with the stored addresses in place of orders.SEALED, kept as they were."""

    def opened(state: Any) -> Any:
        if isinstance(state, orders.Order) and state.details.shipping_address is orders.SEALED:
            kept = stored[_key(state)].details
            details = replace(
                state.details,
                shipping_address=kept.shipping_address,
                billing_address=kept.billing_address,
            )
            return replace(state, details=details)
        return state

    return Changes(
        {key: opened(state) for key, state in changes.loaded.items()},
        {key: opened(state) for key, state in changes.final.items()},
        {
            key: [replace(version, state=opened(version.state)) for version in versions]
            for key, versions in changes.versions.items()
        },
    )


class _PreviewDocuments(MemoryDocuments):
    """Reads like the real repository; saving does nothing."""

    async def save_many(self, changes: Changes[Any]) -> None:
        return None


class _PreviewOrders(MemoryOrders):
    """Reads like the real repository; writes nothing, and answers the writes whose answers a
    decision uses from reads, as the Postgres preview does."""

    async def save_many(self, changes: Changes[Any]) -> None:
        refuse_unopened_changes(changes)

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        return self._data.erased_customers.get((tenant_id, customer_id), 0) + 1

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        return len(await self._dead_letters_of(tenant_id, customer_id))


def _key(state: Any) -> DocumentKey:
    return (state.tenant_id, state.document_id)


def _redacted(state: Any) -> frozenset[orders.DataGroup]:
    return state.redacted if isinstance(state, orders.Order) else frozenset()


class MemoryUnitOfWork:
    def __init__(self, data: MemoryData, *, writes: bool = True) -> None:
        self.data = data
        self._writes = writes
        self._unanswered: set[str] = set()
        """Keys claimed as new and not answered yet: as in Postgres, one left fails the unit
        of work."""

    def ensure_answered(self) -> None:
        if self._unanswered:
            raise UnansweredClaimError(sorted(self._unanswered))

    def documents(self, kind: DocumentKind[S]) -> DocumentRepository[S]:
        # As in Postgres: a codec means JSON documents, else a store of their own, or none.
        repository: MemoryDocuments
        if kind.codec is not None:
            repository = (MemoryDocuments if self._writes else _PreviewDocuments)(
                self.data, kind.name
            )
        elif kind.name == ORDERS:
            repository = (MemoryOrders if self._writes else _PreviewOrders)(self.data)
        else:
            raise ConfigurationError(f"documents of kind {kind.name!r} cannot be stored")
        return cast(DocumentRepository[S], repository)

    def _writing(self, what: str) -> None:
        if not self._writes:
            raise WriteInPreviewError(f"{what} writes, and a preview writes nothing")

    async def claim_many(self, keys: Sequence[tuple[str, bytes]]) -> list[Claim]:
        self._writing("claiming inbox keys")
        claims = []
        for key, request_hash in keys:
            stored = self.data.inbox.get(key)
            if stored is None:
                self.data.inbox[key] = (request_hash, None, None)
                self._unanswered.add(key)
                claims.append(Claim.NEW)
            else:
                claims.append(Claim.DUPLICATE if stored[0] == request_hash else Claim.REUSED)
        return claims

    async def reopen_for_replay(self, keys: Sequence[str]) -> None:
        self._writing("reopening inbox keys")
        for key in keys:
            stored = self.data.inbox.get(key)
            if stored is not None and stored[1] in ("dead_lettered", "parked"):
                del self.data.inbox[key]

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        self._writing("recording a reused key")
        if (message_key, request_hash) in self.data.reuses:
            return False
        self.data.reuses.add((message_key, request_hash))
        return True

    async def bind_tokens(self, uses: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
        self._writing("binding tokens")
        for issuer, token_id, request in uses:
            self.data.token_uses.setdefault((issuer, token_id), request)
        return {(i, t): self.data.token_uses[(i, t)] for i, t, _ in uses}

    async def stored_request_hashes(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {key: self.data.inbox[key][0] for key in keys if key in self.data.inbox}

    async def stored_answers(self, keys: Sequence[str]) -> dict[str, StoredAnswer]:
        rows = {key: self.data.inbox[key] for key in keys if key in self.data.inbox}
        return {key: StoredAnswer(row[1], row[2]) for key, row in rows.items()}

    @asynccontextmanager
    async def _preview(self) -> AsyncIterator[UnitOfWork]:
        yield MemoryUnitOfWork(self.data, writes=False)

    def previewing(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return self._preview()

    async def lock_documents(self, documents: Sequence[tuple[str, str]]) -> None:
        return None

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        return None

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None, order_id: str | None
    ) -> tuple[UUID, bytes]:
        self._writing("sealing a dead letter")
        key_id = uuid4()
        self.data.dead_letters[key_id] = DeadLetterRecord(tenant_id, customer_id, order_id, raw)
        # Not encrypted: what matters here is that the letter goes with its key on erasure.
        return key_id, b"sealed:" + key_id.bytes

    async def answer_many(
        self, answers: Sequence[Answer], extra: Sequence[OutboxMessage] = ()
    ) -> None:
        self._writing("queueing messages")
        for answer in answers:
            request_hash, _, _ = self.data.inbox[answer.key]
            self.data.inbox[answer.key] = (request_hash, answer.outcome.value, answer.summary)
            self._unanswered.discard(answer.key)
        self.data.outbox.extend(m for answer in answers for m in answer.messages)
        self.data.outbox.extend(extra)


class MemoryStore:
    """A `Store` in memory. `data` is what has committed."""

    def __init__(self) -> None:
        self.data = MemoryData()
        self._one_at_a_time = asyncio.Lock()
        self.reachable_now = True
        """Set False to have the processor see a database that stopped answering."""

    async def reachable(self) -> bool:
        return self.reachable_now

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[MemoryUnitOfWork]:
        async with self._one_at_a_time:
            working = copy.deepcopy(self.data)
            uow = MemoryUnitOfWork(working)
            yield uow
            uow.ensure_answered()
            self.data = working

    @asynccontextmanager
    async def trial_unit_of_work(self) -> AsyncIterator[MemoryUnitOfWork]:
        async with self._one_at_a_time:
            yield MemoryUnitOfWork(copy.deepcopy(self.data))
