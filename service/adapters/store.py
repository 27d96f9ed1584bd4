"""Postgres implementation of the storage port: one UnitOfWork is one transaction.

The inbox, outbox and locks live here; each document family has its own repository module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from service.adapters.crypto import MasterKey
from service.adapters.database import TRANSIENT_ERRORS
from service.adapters.headers import encode_headers
from service.adapters.order_store import PostgresOrders
from service.adapters.personal_data import seal_dead_letter
from service.adapters.purchase_order_store import PostgresPurchaseOrders
from service.app.ports import Claim, OutboxMessage, Outcome
from service.errors import TransientError

OUTBOX_CHANNEL = "outbox_pending"


class PostgresUnitOfWork:
    def __init__(
        self, conn: asyncpg.Connection, master: MasterKey, dead_letter_retention_hours: float
    ) -> None:
        self._conn = conn
        self._master = master
        self._dead_letter_retention_hours = dead_letter_retention_hours
        self.purchase_orders = PostgresPurchaseOrders(conn)
        self.orders = PostgresOrders(conn, master)

    async def seal_dead_letter(
        self, raw: bytes, tenant_id: str | None, customer_id: str | None
    ) -> tuple[UUID, bytes]:
        return await seal_dead_letter(
            self._conn,
            self._master,
            raw,
            tenant_id=tenant_id,
            customer_id=customer_id,
            retention_hours=self._dead_letter_retention_hours,
        )

    async def claim(self, message_key: str, request_hash: bytes) -> Claim:
        # ON CONFLICT DO NOTHING instead of catching a unique violation, which would abort the
        # transaction; a concurrent claim of the same key blocks here until the first commits.
        inserted = await self._conn.fetchval(
            "INSERT INTO inbox (message_key, request_hash) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            message_key,
            request_hash,
        )
        if inserted:
            return Claim.NEW
        stored = await self._conn.fetchval(
            "SELECT request_hash FROM inbox WHERE message_key = $1", message_key
        )
        return Claim.DUPLICATE if stored == request_hash else Claim.REUSED

    async def claim_reuse(self, message_key: str, request_hash: bytes) -> bool:
        inserted = await self._conn.fetchval(
            "INSERT INTO inbox_reuse (message_key, request_hash) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            message_key,
            request_hash,
        )
        return bool(inserted)

    async def lock_document(self, tenant_id: str, document_id: str) -> None:
        # An advisory lock also covers documents that do not exist yet (two racing creates).
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{tenant_id}\x1f{document_id}"
        )

    async def lock_stock_items(self, keys: Sequence[str]) -> None:
        # Sorted, so two transactions touching the same items always lock in the same order.
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 1))"
            " FROM (SELECT DISTINCT unnest($1::text[]) AS k ORDER BY 1) AS items",
            list(keys),
        )

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        await self._queue(messages, None, None)

    async def answer(
        self, message_key: str, outcome: Outcome, messages: Sequence[OutboxMessage]
    ) -> None:
        await self._queue(messages, message_key, outcome)

    async def _queue(
        self, messages: Sequence[OutboxMessage], message_key: str | None, outcome: Outcome | None
    ) -> None:
        # One round trip: outbox rows in the given order, the inbox outcome, and a NOTIFY that
        # Postgres delivers at commit to wake the relay before its next poll.
        await self._conn.execute(
            f"""
            WITH queued AS (
                INSERT INTO outbox (topic, message_key, headers, payload)
                SELECT topic, message_key, headers, payload
                FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bytea[]) WITH ORDINALITY
                    AS m(topic, message_key, headers, payload, position)
                ORDER BY position
            ), answered AS (
                UPDATE inbox SET outcome = $6 WHERE message_key = $5 AND $6::text IS NOT NULL
            )
            SELECT pg_notify('{OUTBOX_CHANNEL}', '')
            """,
            [m.topic for m in messages],
            [m.key for m in messages],
            [encode_headers(m.headers) for m in messages],
            [m.value for m in messages],
            message_key,
            outcome.value if outcome is not None else None,
        )


class PostgresStore:
    def __init__(
        self, pool: asyncpg.Pool, master: MasterKey, dead_letter_retention_hours: float = 336.0
    ) -> None:
        self._pool = pool
        self._master = master
        self._dead_letter_retention_hours = dead_letter_retention_hours

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[PostgresUnitOfWork]:
        try:
            conn = await self._pool.acquire()
        except Exception as error:
            # Whatever keeps us from getting a connection (restart, refused, maintenance) can
            # only be waited out; the command stays uncommitted in Kafka meanwhile.
            raise TransientError(
                f"no database connection: {type(error).__name__}: {error}"
            ) from error
        try:
            async with conn.transaction():
                yield PostgresUnitOfWork(conn, self._master, self._dead_letter_retention_hours)
        except TRANSIENT_ERRORS as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        finally:
            await self._pool.release(conn)
