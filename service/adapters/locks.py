"""Transaction-scoped advisory locks, striped so that a transaction never holds more than a
fixed number of them, however large its batch.

Postgres' shared lock table holds max_locks_per_transaction x max_connections entries; a batch
of thousands of orders taking one lock each could exhaust it. Each name hashes to one of
LOCK_STRIPES locks of its space instead: two names may share a stripe (then their writers
serialise needlessly, which is harmless), but a transaction holds at most LOCK_STRIPES locks
per space. Every caller takes a space's stripes sorted, in one statement, and the spaces in
the order below, so two transactions never wait on each other in opposite orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import asyncpg

LOCK_STRIPES = 1024


class LockSpace(IntEnum):
    """The first key of pg_advisory_xact_lock(int, int); taken in this order."""

    DOCUMENTS = 1
    """A document (tenant, id), including one that does not exist yet (two racing creates)."""
    VOUCHERS = 3
    """A tenant's voucher code: orders racing for one voucher are decided one after another."""
    CUSTOMERS = 4
    """A customer: an erasure serialises with every write of the customer's personal data."""
    STOCK_ITEMS = 2
    """A stock item: its movements queue in the order their transactions commit."""


def lock_name(tenant_id: str, name: str) -> str:
    return f"{tenant_id}\x1f{name}"


async def lock_striped(conn: asyncpg.Connection, space: LockSpace, names: Sequence[str]) -> None:
    """Hold, until the transaction ends, the stripes of `space` that `names` hash to."""
    if not names:
        return
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, stripe) FROM ("
        " SELECT DISTINCT (hashtext(name) & $2) AS stripe FROM unnest($3::text[]) AS name"
        " ORDER BY 1) AS stripes",
        int(space),
        LOCK_STRIPES - 1,
        list(names),
    )
