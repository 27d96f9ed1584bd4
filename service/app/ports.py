"""What the use cases need from storage; the Postgres and in-memory stores implement it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from service.domain.documents import Document
from service.domain.values import frozen


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


@frozen
class OutboxMessage:
    """A message to publish. Key, value and headers are bytes: a dead letter carries what it
    arrived with, whatever that holds. A null value is a tombstone (state topics only): Kafka
    publishes it as a record without a value, which compaction reads as "forget this key"."""

    topic: str
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@frozen
class Answer:
    """The outcome of one claimed inbox key and the messages that carry it."""

    key: str
    outcome: Outcome
    messages: Sequence[OutboxMessage]
    summary: bytes | None = None
    """What a reply says of the outcome (service/app/replies.py), kept with the key so that a
    duplicate is answered as the original was."""


@frozen
class StoredAnswer:
    """What the inbox recorded of an answered key."""

    outcome: str | None
    summary: bytes | None
    """None for keys answered before summaries were kept."""


@frozen
class RecordedActor:
    """Who acted: proven by a token (with its issuer), or as the envelope claimed (no issuer)."""

    type: str
    id: str
    issuer: str | None = None


@frozen
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


@frozen
class HistoryEntry:
    version: int
    command_id: UUID
    event_id: UUID
    event_type: str
    snapshot: bytes
    actor: RecordedActor | None = None


DocumentKey = tuple[str, str]
"""(tenant_id, document id)."""


S = TypeVar("S", bound=Document)


@frozen
class Version(Generic[S]):
    """A version of a live document a command produced, and its history entry."""

    state: S
    entry: HistoryEntry


@frozen
class Save(Generic[S]):
    """A live document to write: the state it was loaded in (None for a new document) and the
    versions that followed, in order; the last is its new state."""

    previous: S | None
    versions: Sequence[Version[S]]

    @property
    def document(self) -> S:
        return self.versions[-1].state


@dataclass
class Changes(Generic[S]):
    """What a batch changed in one kind of document: per document it touched, the state it was
    loaded in, the versions its commands produced and its final state (a deleted document keeps
    no history)."""

    loaded: Mapping[DocumentKey, S]
    final: dict[DocumentKey, S] = field(default_factory=dict)
    versions: dict[DocumentKey, list[Version[S]]] = field(default_factory=dict)

    def record(self, state: S, versions: Sequence[Version[S]]) -> None:
        key = (state.tenant_id, state.document_id)
        self.final[key] = state
        self.versions.setdefault(key, []).extend(versions)

    def saves(self) -> list[Save[S]]:
        """The documents that live on, with every version the batch gave them."""
        saves = []
        for key, state in self.final.items():
            if not state.is_deleted:
                loaded = self.loaded.get(key)
                previous = loaded if loaded is not None and not loaded.is_deleted else None
                saves.append(Save(previous, self.versions[key]))
        return saves

    def deletions(self) -> list[S]:
        """The tombstones of the documents the batch deleted."""
        return [state for state in self.final.values() if state.is_deleted]

    def out_of_sequence(self) -> list[DocumentKey]:
        """The documents whose new versions do not count up by one from the version they were
        loaded at, a tombstone's included (a family that let a deleted document's id be used
        again, or gave two events one version). Stores refuse them: a committed version is
        its document's state for good, which service/adapters/document_cache.py relies on."""
        wrong = []
        for key, final in self.final.items():
            loaded = self.loaded.get(key)
            expected = loaded.version if loaded is not None else 0
            for version in self.versions.get(key, ()):
                expected += 1
                if version.state.version != expected or version.entry.version != expected:
                    wrong.append(key)
                    break
            else:
                # The last version is the final state; a deletion is a version of its own.
                if final.version != expected + (1 if final.is_deleted else 0):
                    wrong.append(key)
        return wrong


class DocumentCodec(Protocol[S]):
    """How a family's documents are kept as JSON: the stored document is the snapshot of the
    document's last version, the one its history entry holds."""

    def status(self, document: S) -> str:
        """The status column of a live document, for queries that filter on it."""

    def load(self, tenant_id: str, document_id: str, version: int, stored: str) -> S:
        """A live document from its stored snapshot."""

    def tombstone(self, tenant_id: str, document_id: str, version: int, deleted_at: datetime) -> S:
        """The state a deletion left."""


@frozen
class DocumentKind(Generic[S]):
    """A kind of document and how it is stored: as JSON with `codec` in the shared document
    tables, or (codec None) by a repository of its own that the store provides."""

    name: str
    codec: DocumentCodec[S] | None = None


class DocumentRepository(Protocol[S]):
    """The documents of one kind: every family's storage does at least this."""

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, S]:
        """The live documents and tombstones among `keys`; those that never existed are
        absent. A few statements, however many keys. `personal_data` False: the decisions
        will not read the documents' personal data, so it stays sealed (kinds without any
        ignore it)."""

    async def save_many(self, changes: Changes[S]) -> None:
        """Write every final state: live documents with their new versions; deleted ones go for
        good, history included, leaving only their tombstones. A few statements, however
        many."""


class UnitOfWork(Protocol):
    """One database transaction; nothing is visible to others until it commits."""

    def documents(self, kind: DocumentKind[S]) -> DocumentRepository[S]:
        """The repository of one kind of document, in this transaction."""

    async def claim_many(self, keys: Sequence[tuple[str, bytes]]) -> list[Claim]:
        """Record (key, request hash) pairs in the inbox, in one go; a concurrent claim of the
        same key waits for this transaction. A key repeated in `keys` is new at most once.
        Every key new here is answered (`answer_many`) in this unit of work: one left
        unanswered fails it (UnansweredClaimError), and nothing commits."""

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

    async def stored_answers(self, keys: Sequence[str]) -> dict[str, StoredAnswer]:
        """The outcome and reply summary recorded for each of these keys, for those answered."""

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


class TopicDirectory(Protocol):
    async def existing(self, topics: Collection[str]) -> set[str]:
        """Those of `topics` that exist on the cluster."""


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def trial_unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction that is always rolled back: for deciding what would happen."""

    async def reachable(self) -> bool:
        """Whether the database answers now: tells a failing server from a failing command."""
