"""The inbox answers of a batch on a real Postgres: a claim goes in as accepted, so an accepted
command's answer writes nothing more; any other outcome is written over its claim as a heap-only
update, and nearly none gives the inbox's indexes an entry."""

from __future__ import annotations

import asyncio
import json
from itertools import count

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from tests.support import change_status, create

FAMILY = purchase_order_family("it.")
offsets = count()


@pytest.mark.parametrize("tenant_id", ["t", "tenant-a", "tenant-of-16-abc", "t" * 32])
async def test_the_answers_of_a_batch_are_written_in_place(
    database_url: str, tenant_id: str
) -> None:
    # The key holds the tenant, so its length moves where a row's outcome lands in its
    # alignment padding: whether an answer fits beside the claim on a half-full page.
    commands = 300  # inbox rows over several pages
    # Every other command is a create (accepted); the others open an order that does not
    # exist (rejected).
    bodies = [
        create(f"PO-{i}", tenant_id=tenant_id)
        if i % 2 == 0
        else change_status(f"PO-{i}", "open", tenant_id=tenant_id)
        for i in range(commands)
    ]
    batch = [
        IncomingMessage(
            "it.cmds", 0, next(offsets), 1, f"PO-{i}".encode(), json.dumps(body).encode()
        )
        for i, body in enumerate(bodies)
    ]
    rejected = commands // 2
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        processor = CommandProcessor(
            PostgresStore(pool, MasterKey(new_key())),
            DocumentDecider(FAMILY, "it.movements"),
            max_command_bytes=65536,
            signer=Signer(new_key(), "it"),
        )
        assert await processor.process_batch(batch) == [Outcome.ACCEPTED, Outcome.REJECTED] * (
            commands // 2
        )
    finally:
        await pool.close()  # a backend that ends reports its table statistics
    db = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            row = await db.fetchrow(
                "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE relname = 'inbox'"
            )
            if row is not None and row["n_tup_ins"] >= commands:
                break
            await asyncio.sleep(0.1)
            await db.execute("SELECT pg_stat_clear_snapshot()")
        assert row is not None
        assert (row["n_tup_ins"], row["n_tup_upd"]) == (commands, rejected)
        # Full pages (fillfactor 100) made none of them heap-only.
        assert row["n_tup_hot_upd"] >= 0.9 * rejected
    finally:
        await db.close()
