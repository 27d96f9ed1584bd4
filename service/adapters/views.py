"""Read-only queries for operators and health checks: the read side, apart from the stores.

Plain functions over an asyncpg connection (or pool) returning small frozen values, so the
entrypoints that show state never hold SQL. Every statement is a fixed string; a document's kind
is a parameter, never a part of a table name.

Customer orders are read through `PostgresOrders` instead (their personal data needs decrypting),
so only their tombstones and history are here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

from contracts.topics import ORDERS
from service.domain.values import frozen

Queryable: TypeAlias = asyncpg.Connection | asyncpg.Pool
"""A connection, or a pool that lends one for the query."""

# Documents kept as JSON (purchase orders, and any family registered with a codec) live in the
# shared tables, told apart by kind; customer orders have tables of their own.
_DOCUMENT = (
    "SELECT status, version, document::text AS document FROM documents"
    " WHERE kind = $1 AND tenant_id = $2 AND document_id = $3"
)
_TOMBSTONE = (
    "SELECT last_version, deleted_at FROM document_tombstones"
    " WHERE kind = $1 AND tenant_id = $2 AND document_id = $3"
)
_HISTORY = (
    "SELECT version, event_type, command_id, recorded_at, actor_type, actor_id, actor_issuer"
    " FROM document_history WHERE kind = $1 AND tenant_id = $2 AND document_id = $3"
    " ORDER BY version"
)
_ORDER_TOMBSTONE = (
    "SELECT last_version, deleted_at FROM order_tombstones WHERE tenant_id = $1 AND order_id = $2"
)
_ORDER_HISTORY = (
    "SELECT version, event_type, command_id, recorded_at, actor_type, actor_id, actor_issuer"
    " FROM order_history WHERE tenant_id = $1 AND order_id = $2 ORDER BY version"
)

_OUTBOX_BACKLOG = (
    "SELECT count(*) AS pending,"
    " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
    " FROM outbox"
)


@frozen
class StoredDocument:
    status: str
    version: int
    document: str
    """The stored snapshot of its last version, as JSON text."""


@frozen
class Tombstone:
    last_version: int
    deleted_at: datetime


@frozen
class HistoryEntry:
    version: int
    event_type: str
    command_id: str
    recorded_at: datetime
    actor_type: str | None
    actor_id: str | None
    actor_issuer: str | None
    """Set when a token's issuer proved the actor; None when the actor was only claimed."""


@frozen
class OutboxBacklog:
    pending: int
    """Outcome messages not yet published."""
    oldest_seconds: float
    """How long the oldest of them has waited; 0 when there are none."""


async def document(
    conn: Queryable, kind: str, tenant_id: str, document_id: str
) -> StoredDocument | None:
    """A document kept as JSON, as stored now, or None (never created, deleted, or of a kind
    with tables of its own)."""
    row = await conn.fetchrow(_DOCUMENT, kind, tenant_id, document_id)
    if row is None:
        return None
    return StoredDocument(row["status"], row["version"], row["document"])


async def tombstone(
    conn: Queryable, kind: str, tenant_id: str, document_id: str
) -> Tombstone | None:
    """What is left of a deleted document: its last version and when it went; None if none."""
    row = await (
        conn.fetchrow(_ORDER_TOMBSTONE, tenant_id, document_id)
        if kind == ORDERS
        else conn.fetchrow(_TOMBSTONE, kind, tenant_id, document_id)
    )
    return None if row is None else Tombstone(row["last_version"], row["deleted_at"])


async def history(
    conn: Queryable, kind: str, tenant_id: str, document_id: str
) -> list[HistoryEntry]:
    """Every recorded version of a document, oldest first."""
    rows = await (
        conn.fetch(_ORDER_HISTORY, tenant_id, document_id)
        if kind == ORDERS
        else conn.fetch(_HISTORY, kind, tenant_id, document_id)
    )
    return [
        HistoryEntry(
            version=row["version"],
            event_type=row["event_type"],
            command_id=str(row["command_id"]),
            recorded_at=row["recorded_at"],
            actor_type=row["actor_type"],
            actor_id=row["actor_id"],
            actor_issuer=row["actor_issuer"],
        )
        for row in rows
    ]


async def outbox_backlog(conn: Queryable, *, timeout: float | None = None) -> OutboxBacklog:
    """How far the relay is behind: unpublished outcomes and the oldest one's age."""
    row = await conn.fetchrow(_OUTBOX_BACKLOG, timeout=timeout)
    # count() is a bigint and extract() a numeric (a Decimal): plain numbers for the caller.
    return OutboxBacklog(int(row["pending"]), float(row["oldest"]))
