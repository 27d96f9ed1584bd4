"""What the use cases need from storage; the Postgres adapter implements it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
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
    PREVIEWED = "previewed"
    """A dry run: answered with a preview; never recorded in the inbox."""


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish. Key, value and headers are bytes: a dead letter carries what it
    arrived with, whatever that holds."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Answer:
    """The outcome of one claimed inbox key and the messages that carry it."""

    key: str
    outcome: Outcome
    messages: Sequence[OutboxMessage]


@dataclass(frozen=True)
class RecordedActor:
    """Who acted: proven by a token (with its issuer), or as the envelope claimed (no issuer)."""

    type: str
    id: str
    issuer: str | None = None


@dataclass(frozen=True)
class Claims:
    """What a verified actor token says: who acts, for which tenant, with which scopes."""

    subject: str
    issuer: str
    role: str | None
    tenant: str | None
    scopes: frozenset[str]
    token_id: str | None = None
    """The `jti` claim: the command_id the token is bound to. None only for a fresh token from a
    key that accepts unbound tokens (the verifier checked its age)."""


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    command_id: UUID
    event_id: UUID
    event_type: str
    snapshot: bytes
    actor: RecordedActor | None = None


DocumentKey = tuple[str, str]
"""(tenant_id, document id)."""


@dataclass
class PurchaseOrderChanges:
    """What a batch changed: the final state of each order it touched, with the snapshot and
    the new history of the live ones (a deleted order keeps no history)."""

    final: dict[DocumentKey, po.State] = field(default_factory=dict)
    snapshots: dict[DocumentKey, bytes] = field(default_factory=dict)
    history: dict[DocumentKey, list[HistoryEntry]] = field(default_factory=dict)

    def record(self, state: po.State, history: Sequence[HistoryEntry]) -> None:
        key = (state.tenant_id, state.purchase_order_id)
        self.final[key] = state
        self.history.setdefault(key, []).extend(history)
        if history:
            self.snapshots[key] = history[-1].snapshot


class PurchaseOrderRepository(Protocol):
    async def load_many(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, po.State]:
        """The live orders and tombstones among `keys`; orders that never existed are absent."""

    async def save_many(self, changes: PurchaseOrderChanges) -> None:
        """Write every final state: live orders with their history; deleted ones go for good,
        history included, leaving only their tombstones."""


@dataclass(frozen=True)
class OrderVersion:
    """A version of an order a command produced, and its history entry."""

    state: orders.Order
    entry: HistoryEntry


@dataclass(frozen=True)
class OrderSave:
    """An order to write: the state it was loaded in (None for a new order) and the versions
    that followed, in order; the last is the order's new state."""

    previous: orders.Order | None
    versions: Sequence[OrderVersion]

    @property
    def order(self) -> orders.Order:
        return self.versions[-1].state


@dataclass
class OrderChanges:
    """What a batch changed: per order it touched, the state it was loaded in, the versions
    its commands produced and its final state."""

    loaded: Mapping[DocumentKey, orders.State]
    final: dict[DocumentKey, orders.State] = field(default_factory=dict)
    versions: dict[DocumentKey, list[OrderVersion]] = field(default_factory=dict)

    def record(self, state: orders.State, versions: Sequence[OrderVersion]) -> None:
        key = (state.tenant_id, state.order_id)
        self.final[key] = state
        self.versions.setdefault(key, []).extend(versions)

    def saves(self) -> list[OrderSave]:
        """The orders that live on, with every version the batch gave them."""
        saves = []
        for key, state in self.final.items():
            if isinstance(state, orders.Order):
                loaded = self.loaded.get(key)
                previous = loaded if isinstance(loaded, orders.Order) else None
                saves.append(OrderSave(previous, self.versions[key]))
        return saves

    def deletions(self) -> list[orders.DeletedOrder]:
        return [state for state in self.final.values() if isinstance(state, orders.DeletedOrder)]


class OrderRepository(Protocol):
    async def load(self, tenant_id: str, order_id: str) -> orders.State | None:
        """The live order with its items and addresses, its tombstone, or None."""

    async def load_states(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, orders.State]:
        """The live orders (with items and addresses) and tombstones among `keys`; orders that
        never existed are absent. A few statements, however many keys."""

    async def load_many(self, tenant_id: str, order_ids: Sequence[str]) -> dict[str, orders.Order]:
        """The live orders among `order_ids`."""

    async def voucher_holders(
        self, vouchers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """Lock the (tenant, voucher code) pairs for this transaction and return the live order
        holding each one that is held."""

    async def lock_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        """Serialise an erasure of these (tenant, customer) pairs with writes of their data."""

    async def erased_customers(self, customers: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the (tenant, customer) pairs that were erased; locks them until commit."""

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        """The ids of the customer's live orders in the tenant."""

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        """Destroy the keys of dead letters about the customer or any order of theirs; returns
        how many."""

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        """Mark the customer erased; returns how many redactions they have had."""

    async def save_many(self, saves: Sequence[OrderSave]) -> None:
        """Write the orders, their items, vouchers, history and (encrypted) personal data, in a
        few statements however many: each version keeps the records of the groups it did not
        change; groups newly redacted lose their keys."""

    async def delete_many(self, tombstones: Sequence[orders.DeletedOrder]) -> None:
        """Remove the orders, their items and history, free their vouchers, shred their
        personal data, and leave their tombstones."""


class UnitOfWork(Protocol):
    """One database transaction; nothing is visible to others until it commits."""

    @property
    def purchase_orders(self) -> PurchaseOrderRepository: ...

    @property
    def orders(self) -> OrderRepository: ...

    async def claim_many(self, keys: Sequence[tuple[str, bytes]]) -> list[Claim]:
        """Record (key, request hash) pairs in the inbox, in one go; a concurrent claim of the
        same key waits for this transaction. A key repeated in `keys` is new at most once."""

    async def reopen_for_replay(self, keys: Sequence[str]) -> None:
        """Forget the keys that were only dead-lettered or parked, so a replay of them is
        decided; keys that were decided stay, so a replay never applies a command twice."""

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        """Record one reuse of a key with this content; False if already answered."""

    async def bind_tokens(self, uses: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
        """Bind each (issuer, token id) to the request it is used for, (issuer, token id,
        request), unless it is bound already; returns the request each one is bound to. Of a
        token used twice in `uses`, the first use binds it."""

    async def stored_request_hashes(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The request hash each of these keys was claimed with, for those claimed."""

    def previewing(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work nested in this one that reads what this one sees and writes nothing
        at all: for deciding what a dry run would do."""

    async def lock_documents(self, documents: Sequence[tuple[str, str]]) -> None:
        """Serialise all work on these (tenant, document id) pairs, including documents that
        do not exist yet; taken in one global order, so batches never deadlock on them."""

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        """Serialise writers of the same stock items, so their movements queue in commit order."""

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None, order_id: str | None
    ) -> tuple[UUID, bytes]:
        """Seal a dead letter under its own key with a retention, tied to the order and the
        customer it names (or the stored order's customer); (key id, sealed bytes)."""

    async def answer_many(
        self, answers: Sequence[Answer], extra: Sequence[OutboxMessage] = ()
    ) -> None:
        """Record the outcomes of claimed keys and queue the messages that carry them (then
        `extra`), in order, for publication once this transaction commits."""


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def trial_unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction that is always rolled back: for deciding what would happen."""

    async def reachable(self) -> bool:
        """Whether the database answers now: tells a failing server from a failing command."""
