"""Postgres implementation of the storage port: one UnitOfWork is one transaction.

The inbox, outbox and locks live here; documents are kept by document_store.py (JSON, by kind)
or, for customer orders, by order_store.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from service.adapters.crypto import Keyring, UnknownMasterKey
from service.adapters.database import OUTBOX_CHANNEL, TRANSIENT_ERRORS
from service.adapters.dedicated import DEDICATED, PREVIEWS
from service.adapters.direct_publisher import Committed, DirectPublisher
from service.adapters.document_cache import CommittedDocuments
from service.adapters.document_store import JsonDocuments
from service.adapters.headers import encode_headers
from service.adapters.locks import LockSpace, lock_name, lock_striped
from service.adapters.personal_data import seal_dead_letter
from service.adapters.preview_store import PreviewUnitOfWork
from service.app.ports import (
    Answer,
    Claim,
    DocumentKind,
    DocumentRepository,
    OutboxMessage,
    Outcome,
    StoredAnswer,
)
from service.domain.documents import Document
from service.errors import ConfigurationError, TransientError, UnansweredClaimError

S = TypeVar("S", bound=Document)
_CANNOT_STORE = "documents of kind {!r} have neither a codec nor a repository of their own"


class PostgresUnitOfWork:
    def __init__(
        self,
        conn: asyncpg.Connection,
        master: Keyring,
        dead_letter_retention_hours: float,
        publisher: DirectPublisher | None = None,
        documents: CommittedDocuments | None = None,
    ) -> None:
        self._conn = conn
        self._master = master
        self._dead_letter_retention_hours = dead_letter_retention_hours
        self._repositories: dict[str, Any] = {}
        self._publisher = publisher
        self._documents = documents
        self.published: list[Committed] = []
        """Rows for the publisher, once the transaction commits."""
        self.epoch: int | None = None
        """The publisher's epoch when this transaction first looked at the outbox."""
        self._unanswered: set[str] = set()
        """Keys this transaction claimed as new and has not answered yet. They are inserted as
        accepted, the outcome nearly every answer gives, so that answering them so writes no
        second version of the row (31 against 21 us a key in a statement benchmark; under
        `make bench` a heap-only update that was cheap beside the outbox rows); no other
        transaction sees them before the answer, and a unit of work that leaves one unanswered
        does not commit."""

    def documents(self, kind: DocumentKind[S]) -> DocumentRepository[S]:
        repository: DocumentRepository[S] | None = self._repositories.get(kind.name)
        if repository is None:
            if kind.codec is not None:
                repository = JsonDocuments(self._conn, kind.name, kind.codec, self._documents)
            elif kind.name in DEDICATED:
                repository = DEDICATED[kind.name].repository(self._conn, self._master)
            else:
                raise ConfigurationError(_CANNOT_STORE.format(kind.name))
            self._repositories[kind.name] = repository
        return repository

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None, order_id: str | None
    ) -> tuple[UUID, bytes]:
        return await seal_dead_letter(
            self._conn,
            self._master,
            raw,
            tenant_id=tenant_id,
            customer_id=customer_id,
            order_id=order_id,
            retention_hours=self._dead_letter_retention_hours,
        )

    async def claim_many(self, keys: Sequence[tuple[str, bytes]]) -> list[Claim]:
        # ON CONFLICT DO NOTHING instead of catching a unique violation, which would abort the
        # transaction; a concurrent claim of the same key blocks here until the first commits.
        # A key repeated within the batch is claimed once and compared in memory. New keys go
        # in as accepted (see `_unanswered`). Only keys not inserted are looked up again: the
        # statement cannot see its own rows, so that probe found nothing for a new key (13.5
        # against 16.0 us of Postgres a key, batches of 900 new keys).
        first_hash: dict[str, bytes] = {}
        for key, request_hash in keys:
            first_hash.setdefault(key, request_hash)
        rows = await self._conn.fetch(
            """
            WITH wanted AS (
                SELECT * FROM unnest($1::text[], $2::bytea[]) AS w(message_key, request_hash)
            ), claimed AS (
                INSERT INTO inbox (message_key, request_hash, outcome)
                SELECT message_key, request_hash, 'accepted' FROM wanted
                ON CONFLICT DO NOTHING RETURNING message_key
            )
            SELECT w.message_key, c.message_key IS NOT NULL AS new,
                   CASE WHEN c.message_key IS NULL THEN
                       (SELECT i.request_hash FROM inbox i WHERE i.message_key = w.message_key)
                   END AS stored
            FROM wanted w LEFT JOIN claimed c USING (message_key)
            """,
            list(first_hash),
            list(first_hash.values()),
        )
        new = {row["message_key"] for row in rows if row["new"]}
        self._unanswered |= new
        stored = {row["message_key"]: row["stored"] for row in rows if not row["new"]}
        unseen = [key for key, value in stored.items() if value is None]
        if unseen:
            # Claimed by a transaction that committed while this statement waited for it: its
            # row is newer than this statement's snapshot, so read it again.
            rows = await self._conn.fetch(
                "SELECT message_key, request_hash FROM inbox WHERE message_key = ANY($1::text[])",
                unseen,
            )
            stored.update((row["message_key"], row["request_hash"]) for row in rows)
        first = {key: Claim.NEW for key in new} | {
            key: Claim.DUPLICATE if value == first_hash[key] else Claim.REUSED
            for key, value in stored.items()
        }
        claims: list[Claim] = []
        seen: set[str] = set()
        for key, request_hash in keys:
            if key not in seen:
                seen.add(key)
                claims.append(first[key])
            elif request_hash == first_hash[key]:
                claims.append(Claim.DUPLICATE)
            else:
                claims.append(Claim.REUSED)
        return claims

    async def reopen_for_replay(self, keys: Sequence[str]) -> None:
        if keys:
            await self._conn.execute(
                "DELETE FROM inbox WHERE message_key = ANY($1::text[])"
                " AND outcome IN ('dead_lettered', 'parked')",
                list(keys),
            )

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        inserted = await self._conn.fetchval(
            "INSERT INTO inbox_reuse (message_key, request_hash) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            message_key,
            request_hash,
        )
        return bool(inserted)

    async def bind_tokens(self, uses: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
        first: dict[tuple[str, str], str] = {}
        for issuer, token_id, request in uses:
            first.setdefault((issuer, token_id), request)
        # As in claim_many: ON CONFLICT DO NOTHING waits for a concurrent binder, and a row it
        # committed meanwhile is read by a statement of its own (a newer snapshot).
        inserted = await self._conn.fetch(
            "INSERT INTO token_uses (issuer, token_id, request)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
            " ON CONFLICT DO NOTHING RETURNING issuer, token_id",
            [issuer for issuer, _ in first],
            [token_id for _, token_id in first],
            list(first.values()),
        )
        bound = {(row["issuer"], row["token_id"]) for row in inserted}
        earlier = [key for key in first if key not in bound]
        if not earlier:
            return first
        rows = await self._conn.fetch(
            "SELECT t.issuer, t.token_id, t.request FROM token_uses t"
            " JOIN unnest($1::text[], $2::text[]) AS w(issuer, token_id)"
            " USING (issuer, token_id)",
            [issuer for issuer, _ in earlier],
            [token_id for _, token_id in earlier],
        )
        return first | {(row["issuer"], row["token_id"]): row["request"] for row in rows}

    async def stored_request_hashes(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            "SELECT message_key, request_hash FROM inbox WHERE message_key = ANY($1::text[])",
            list(keys),
        )
        return {row["message_key"]: row["request_hash"] for row in rows}

    async def stored_answers(self, keys: Sequence[str]) -> dict[str, StoredAnswer]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            "SELECT message_key, outcome, reply FROM inbox WHERE message_key = ANY($1::text[])",
            list(keys),
        )
        return {row["message_key"]: StoredAnswer(row["outcome"], row["reply"]) for row in rows}

    @asynccontextmanager
    async def previewing(self) -> AsyncIterator[PreviewUnitOfWork]:
        # A savepoint though nothing is written (one that writes nothing writes no WAL): its
        # rollback releases the advisory locks the preview took, which, held to the end of the
        # trial, would make its later rounds take locks out of their global order and risk a
        # deadlock with a real batch; and a failed statement leaves the trial usable.
        savepoint = self._conn.transaction()
        await savepoint.start()
        try:
            yield PreviewUnitOfWork(self._conn, self, PREVIEWS)
        finally:
            await savepoint.rollback()

    async def lock_documents(self, documents: Sequence[tuple[str, str]]) -> None:
        names = [lock_name(tenant, document) for tenant, document in documents]
        await lock_striped(self._conn, LockSpace.DOCUMENTS, names)

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        await lock_striped(self._conn, LockSpace.STOCK_ITEMS, keys)

    async def answer_many(
        self, answers: Sequence[Answer], extra: Sequence[OutboxMessage] = ()
    ) -> None:
        # One round trip: outbox rows in the given order, each routed as it is inserted (see
        # `_candidates`), the inbox outcomes, and a NOTIFY that Postgres delivers at commit to
        # wake the relay when anything is left to it.
        messages = [m for answer in answers for m in answer.messages] + list(extra)
        candidates = self._candidates(messages)
        # A key claimed here is in the inbox as accepted already: only other outcomes, and
        # replies, are written.
        unanswered = self._unanswered
        recorded = [
            answer
            for answer in answers
            if answer.key not in unanswered
            or answer.outcome is not Outcome.ACCEPTED
            or answer.summary is not None
        ]
        unanswered.difference_update(answer.key for answer in answers)
        publisher = self._publisher
        # A candidate is published from memory unless a row of its topic and key waits that is
        # not this instance's own. The statement does not see the rows it inserts itself, so
        # `waiting` is what waited before it; each key's rows are read once, however many of
        # the batch's messages have that key (a stock item's movements).
        row = await self._conn.fetchrow(
            f"""
            WITH waiting AS (
                SELECT DISTINCT topic, message_key FROM outbox
                WHERE message_key = ANY($6::bytea[]) AND publisher IS DISTINCT FROM $5::bigint
            ), queued AS (
                INSERT INTO outbox (topic, message_key, headers, payload, publisher, created_at)
                SELECT m.topic, m.message_key, m.headers, m.payload,
                       CASE WHEN m.candidate AND w.topic IS NULL THEN $5::bigint END,
                       clock_timestamp()
                FROM unnest($1::outbox_row[])
                    WITH ORDINALITY AS m(topic, message_key, headers, payload, candidate, position)
                LEFT JOIN waiting w ON (w.topic, w.message_key) = (m.topic, m.message_key)
                ORDER BY m.position
                RETURNING id, publisher IS NOT NULL AS direct
            ), answered AS (
                UPDATE inbox SET outcome = a.outcome, reply = a.reply
                FROM unnest($2::text[], $3::text[], $4::bytea[]) AS a(message_key, outcome, reply)
                WHERE inbox.message_key = a.message_key
            )
            SELECT array(SELECT direct FROM queued ORDER BY id) AS direct,
                array(SELECT id FROM queued WHERE direct ORDER BY id) AS direct_ids,
                (SELECT pg_notify('{OUTBOX_CHANNEL}', '')
                 WHERE EXISTS (SELECT FROM queued WHERE NOT direct)) AS woken
            """,
            [
                (m.topic, m.key, encode_headers(m.headers), m.value, candidate)
                for m, candidate in zip(messages, candidates, strict=True)
            ],
            [answer.key for answer in recorded],
            [answer.outcome.value for answer in recorded],
            [answer.summary for answer in recorded],
            publisher.instance if publisher is not None else None,
            list({m.key for m, candidate in zip(messages, candidates, strict=True) if candidate}),
        )
        # Row ids follow the given order, so the sorted ids of direct rows are theirs in turn.
        mine = [m for m, published in zip(messages, row["direct"], strict=True) if published]
        rows = [
            Committed(outbox_id, message)
            for outbox_id, message in zip(row["direct_ids"], mine, strict=True)
        ]
        if publisher is not None:
            publisher.inserted(rows)
        self.published += rows

    def committed(self) -> None:
        """The transaction committed: the documents it read and wrote are current now."""
        for repository in self._repositories.values():
            if isinstance(repository, JsonDocuments):
                repository.committed()

    def ensure_answered(self) -> None:
        """Raises, before the commit, when a key claimed as new was left unanswered."""
        if self._unanswered:
            raise UnansweredClaimError(sorted(self._unanswered))

    def _candidates(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        """Which messages the publisher may send from memory after the commit, unless a row of
        their topic and key waits in the outbox that is not this instance's own (answer_many
        looks as it inserts): such a key goes to the relay, which publishes in id order and
        waits behind rows still being published from memory (by whichever instance: relay.py);
        so does one the publisher says to keep away from. Only others' rows count: a hot key
        (a stock item's movements) has many of this instance's own waiting at any time.
        Another instance's rows are never taken from it: it may be sending them still, and a
        copy of its could land after the relay's later messages."""
        publisher = self._publisher
        if not messages or publisher is None:
            return [False] * len(messages)
        if self.epoch is None:  # the first look at the outbox is the one counted on
            self.epoch = publisher.epoch
        # Before the statement looks: a row the publisher stops keeping away meanwhile is
        # visible to it.
        blocked = publisher.leaving({(m.topic, m.key) for m in messages})
        taken = publisher.taking()
        return [taken(m.topic) and (m.topic, m.key) not in blocked for m in messages]


class PostgresStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        master: Keyring,
        dead_letter_retention_hours: float = 336.0,
        publisher: DirectPublisher | None = None,
        documents: CommittedDocuments | None = None,
    ) -> None:
        """`documents`: the committed documents this process holds decoded (document_cache.py);
        None reads every document from Postgres."""
        self._pool = pool
        self._master = master
        self._dead_letter_retention_hours = dead_letter_retention_hours
        self._publisher = publisher
        self._documents = documents

    async def reachable(self) -> bool:
        """Whether the database answers now: tells a failing server from a failing command."""
        try:
            async with self._pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except Exception:
            return False
        return True

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[PostgresUnitOfWork]:
        publisher = self._publisher
        async with self._connection() as conn:
            uow = PostgresUnitOfWork(
                conn, self._master, self._dead_letter_retention_hours, publisher, self._documents
            )
            try:
                async with conn.transaction():
                    yield uow
                    uow.ensure_answered()
            except BaseException:
                if publisher is not None:
                    publisher.abandoned(uow.published)
                raise
            uow.committed()
            if publisher is not None and uow.epoch is not None:  # committed, and it looked
                publisher.committed(uow.published, uow.epoch)

    @asynccontextmanager
    async def trial_unit_of_work(self) -> AsyncIterator[PostgresUnitOfWork]:
        async with self._connection() as conn:
            trial = conn.transaction()
            await trial.start()
            try:
                yield PostgresUnitOfWork(conn, self._master, self._dead_letter_retention_hours)
            finally:
                await trial.rollback()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; whatever fails for a reason that can only be waited out
        (restart, refused, maintenance, a lost connection) is a TransientError, and the
        commands stay uncommitted in Kafka meanwhile."""
        try:
            conn = await self._pool.acquire()
        except Exception as error:
            raise TransientError(
                f"no database connection: {type(error).__name__}: {error}"
            ) from error
        try:
            yield conn
        except TRANSIENT_ERRORS as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        except UnknownMasterKey as error:
            # A key wrapped by a master key this process does not hold yet (or any more): a
            # keyring being rotated. Wait it out (readiness says why), never park the command.
            raise TransientError(str(error)) from error
        finally:
            await self._pool.release(conn)
