"""Dry runs write nothing, not even in a transaction that is rolled back (issue 18, point 3).

A rolled-back row is invisible to every query, so counting rows cannot tell a preview that
wrote and rolled back from one that wrote nothing; the WAL can. These tests run their own
Postgres, whose data directory they can read, and look at what reached the WAL while the
previews were decided: which relations transactions wrote (pg_walinspect), whether a
transaction that wrote was rolled back, and whether the canaries the dry runs carried are in
any file of the server.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.database import create_pool, migrate
from service.adapters.preview_store import WriteInPreviewError
from service.adapters.unit_of_work import PostgresStore
from service.app.family import BatchDecider
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.orders.ports import order_repository
from service.app.ports import Changes, OutboxMessage, Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from service.app.retry import RetryPolicy
from service.devstack.embedded import EmbeddedPostgres
from service.devstack.processes import free_port
from tests.support import (
    address,
    change_status,
    command,
    create,
    create_order,
    delete,
    delete_order,
    details,
    invoice,
    order_command,
    order_status,
    receipt,
    redact_customer,
    update_order,
)

ORDERS = order_family("pv.")
PURCHASE_ORDERS = purchase_order_family("pv.")
MASTER = MasterKey(new_key())
SIGNER = Signer(new_key(), "it")
offsets = count()


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("previews") / "pgdata", free_port())
    server.start()
    yield server
    server.remove()


@pytest.fixture
async def own_database(own_postgres: EmbeddedPostgres) -> str:
    name = f"previews_{uuid.uuid4().hex[:12]}"
    base, _, _ = own_postgres.url.rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = f"{base}/{name}"
    await migrate(url)
    return url


@pytest.fixture
async def own_db(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_database)
    await conn.execute("CREATE EXTENSION pg_walinspect")
    yield conn
    await conn.close()


@pytest.fixture
async def own_pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_database, 8)
    yield pool
    await pool.close()


def processor(pool: asyncpg.Pool, decider: BatchDecider[Any]) -> CommandProcessor[Any]:
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        decider,
        max_command_bytes=65536,
        signer=SIGNER,
        retry=RetryPolicy(first_backoff_seconds=0.01, max_backoff_seconds=0.05),
    )


def message(body: dict[str, Any], *, dry_run: bool = False) -> IncomingMessage:
    if dry_run:
        body = {**body, "dry_run": True}
    key = str(body.get("order_id") or body.get("purchase_order_id") or body["customer_id"])
    return IncomingMessage(
        "pv.commands", 0, next(offsets), 1, key.encode(), json.dumps(body).encode()
    )


def canary() -> str:
    return f"Canary{secrets.token_hex(6)}"


def found_in(blob: bytes, values: list[str]) -> list[str]:
    return [v for v in values if v.encode() in blob]


def files_under(root: Path) -> bytes:
    blobs = []
    for path in sorted(root.rglob("*")):
        # The server removes temporary files of its own as it runs.
        with contextlib.suppress(FileNotFoundError):
            if path.is_file():
                blobs.append(path.read_bytes())
    return b"".join(blobs)


async def contents(db: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """Per table but the outbox (where previews go), its row count and a digest of its rows."""
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'outbox'"
    )
    found = {}
    for row in tables:
        table = row["tablename"]
        found[table] = tuple(
            await db.fetchrow(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
                f" FROM {table} AS t"
            )
        )
    assert {"data_keys", "personal_data", "dead_letter_keys"} <= set(found)
    return found


@dataclass(frozen=True)
class Written:
    """What transactions of this database wrote to the WAL in a stretch of it."""

    relations: set[str]
    """Every relation written by a transaction that had an id, which it gets by writing:
    reading (pruning, hint bits) writes WAL too, without one."""
    rolled_back: int
    """Transactions that wrote and were then rolled back (or savepoints that were)."""


async def wal_position(db: asyncpg.Connection) -> int:
    position: int = await db.fetchval("SELECT pg_current_wal_insert_lsn()")
    return position


async def written_since(db: asyncpg.Connection, start: int) -> Written:
    end = await wal_position(db)
    # pg_walinspect reads only WAL that is flushed; a checkpoint flushes it (and writes the
    # data files, for the search of the files).
    await db.execute("CHECKPOINT")
    rows = await db.fetch(
        "SELECT DISTINCT coalesce(pg_filenode_relation(b.reltablespace, b.relfilenode)::text,"
        " 'filenode ' || b.relfilenode) AS relation"
        " FROM pg_get_wal_block_info($1, $2) b"
        " WHERE b.xid <> 0"
        " AND b.reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
        start,
        end,
    )
    rolled_back: int = await db.fetchval(
        "SELECT count(*) FROM pg_get_wal_records_info($1, $2)"
        " WHERE resource_manager = 'Transaction' AND record_type LIKE 'ABORT%'",
        start,
        end,
    )
    return Written({row["relation"] for row in rows}, rolled_back)


async def outbox_relations(db: asyncpg.Connection) -> set[str]:
    """The outbox, its indexes, sequence and TOAST table: where a preview's answer goes."""
    rows = await db.fetch(
        "SELECT 'outbox'::regclass::text AS relation UNION"
        " SELECT objid::regclass::text FROM pg_depend"
        " WHERE refobjid = 'outbox'::regclass AND classid = 'pg_class'::regclass UNION"
        " SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'outbox'::regclass"
    )
    return {row["relation"] for row in rows}


async def previews(db: asyncpg.Connection, topic: str) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM outbox WHERE topic = $1", topic)
    return {p["command_id"]: p for p in (json.loads(row["payload"]) for row in rows)}


async def events_of(db: asyncpg.Connection, command_id: str) -> list[dict[str, Any]]:
    """The events a real command published, as a preview lists them."""
    rows = await db.fetch(
        "SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", "pv.orders.events"
    )
    return [
        {"type": e["type"], "version": e["version"], "data": e.get("data")}
        for e in (json.loads(row["payload"]) for row in rows)
        if e["command_id"] == command_id
    ]


def without_times(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**e, "data": {k: v for k, v in (e["data"] or {}).items() if k != "completed_at"}}
        for e in events
    ]


async def assert_previews_wrote_nothing(
    db: asyncpg.Connection,
    own_postgres: EmbeddedPostgres,
    before: dict[str, tuple[int, str]],
    written: Written,
    canaries: list[str],
) -> None:
    assert await contents(db) == before
    # The answers went to the outbox, and the detector saw them: nothing else was written.
    assert "outbox" in written.relations
    assert written.relations - await outbox_relations(db) == set()
    assert written.rolled_back == 0
    if canaries:
        assert found_in(files_under(own_postgres.data_dir), canaries) == []


async def test_dry_runs_of_every_order_command_write_nothing(
    own_pool: asyncpg.Pool, own_db: asyncpg.Connection, own_postgres: EmbeddedPostgres
) -> None:
    db = own_db
    real = processor(own_pool, DocumentDecider(ORDERS, "pv.movements"))
    undeliverable = create_order(
        "O-DL", details={"customer_id": "CUST-1", "billing_address": address(email="x@@y")}
    )
    setup = [
        create_order("O-1", details={"customer_id": "CUST-1", "voucher_code": "V-1"}),
        order_status("O-1", "ready"),
        create_order("O-2", details={"customer_id": "CUST-1"}),
        create_order("O-3", details={"customer_id": "CUST-2"}),
        create_order("O-9", details={"customer_id": "CUST-9"}),
        order_status("O-9", "cancelled", "customer"),
        redact_customer("CUST-9"),
        undeliverable,
    ]
    outcomes = await real.process_batch([message(body) for body in setup])
    assert outcomes == [Outcome.ACCEPTED] * 7 + [Outcome.DEAD_LETTERED]
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 1
    assert await db.fetchval("SELECT redactions FROM erased_customers") == 1

    ship, bill, moved, mail = canary(), canary(), canary(), canary()
    dry_runs = [
        create_order(
            "O-NEW",
            details={
                "customer_id": "CUST-1",
                "voucher_code": "V-2",
                "shipping_address": address(ship, email=f"{mail}@example.org"),
                "billing_address": address(bill, city=bill),
            },
        ),
        update_order("O-2", {"shipping_address": address(moved, lines=[moved])}),
        order_status("O-1", "cancelled", "customer"),
        order_status("O-2", "ready"),
        delete_order("O-3"),
        order_command("order.redact", "O-2", {}),
        order_command("order.redact", "O-1", {}),
        redact_customer("CUST-1"),
        redact_customer("CUST-9"),
    ]
    before = await contents(db)
    start = await wal_position(db)
    outcomes = await real.process_batch([message(body, dry_run=True) for body in dry_runs])
    written = await written_since(db, start)

    assert outcomes == [Outcome.PREVIEWED] * len(dry_runs)
    shown = await previews(db, ORDERS.topics.previews)
    assert [shown[body["command_id"]]["would_accept"] for body in dry_runs] == [True] * 9
    await assert_previews_wrote_nothing(
        db, own_postgres, before, written, [ship, bill, moved, mail]
    )

    # The erasure previews said what the erasures do, dead letters counted, receipts numbered.
    erasures = dry_runs[-2:]
    decided = await real.process_batch([message(body) for body in erasures])
    assert decided == [Outcome.ACCEPTED] * 2
    for body in erasures:
        preview = shown[body["command_id"]]["events"]
        assert without_times(preview) == without_times(await events_of(db, body["command_id"]))
    receipts = [shown[body["command_id"]]["events"][-1] for body in erasures]
    assert [r["version"] for r in receipts] == [1, 2]
    # The letter was among the keys the receipt counted: the real erasure destroyed it.
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0


async def test_dry_runs_of_purchase_order_commands_write_nothing(
    own_pool: asyncpg.Pool, own_db: asyncpg.Connection, own_postgres: EmbeddedPostgres
) -> None:
    db = own_db
    real = processor(own_pool, DocumentDecider(PURCHASE_ORDERS, "pv.movements"))
    setup = [
        create("PO-1"),
        change_status("PO-1", "open"),
        change_status("PO-1", "receiving"),
        create("PO-2"),
    ]
    assert await real.process_batch([message(body) for body in setup]) == [Outcome.ACCEPTED] * 4

    # No canaries here: a purchase order holds no personal data, so its preview shows the
    # documents it would write, supplier and all, and the outbox row keeps them in the WAL.
    dry_runs = [
        command("purchase_order.create", "PO-NEW", details(supplier_id="SUP-NEW")),
        command("purchase_order.update", "PO-2", details(supplier_id="SUP-2")),
        receipt("PO-1", "RCV-1", **{"WIDGET-001": 40}),
        invoice("PO-1", "INV-1"),
        change_status("PO-1", "closed"),
        delete("PO-2"),
    ]
    before = await contents(db)
    start = await wal_position(db)
    outcomes = await real.process_batch([message(body, dry_run=True) for body in dry_runs])
    written = await written_since(db, start)

    assert outcomes == [Outcome.PREVIEWED] * len(dry_runs)
    shown = await previews(db, PURCHASE_ORDERS.topics.previews)
    assert set(shown) == {body["command_id"] for body in dry_runs}
    accepted = [shown[body["command_id"]]["would_accept"] for body in dry_runs]
    assert accepted[:4] == [True] * 4
    await assert_previews_wrote_nothing(db, own_postgres, before, written, [])


async def test_a_write_rolled_back_still_reaches_the_wal(
    own_pool: asyncpg.Pool, own_db: asyncpg.Connection, own_postgres: EmbeddedPostgres
) -> None:
    """Why previews must not write at all, and the control of the searches above: a row written
    and rolled back is in no table, yet the WAL and its files hold it."""
    db = own_db
    secret = canary()
    before = await contents(db)
    start = await wal_position(db)
    async with PostgresStore(own_pool, MASTER).trial_unit_of_work() as trial:
        await order_repository(trial).record_customer_erasure("tenant-a", secret)
    written = await written_since(db, start)

    assert await contents(db) == before
    assert "erased_customers" in written.relations
    assert written.rolled_back == 1
    assert found_in(files_under(own_postgres.data_dir / "pg_wal"), [secret]) == [secret]


async def test_a_preview_refuses_the_writes_no_decider_makes(
    own_pool: asyncpg.Pool, own_db: asyncpg.Connection
) -> None:
    before = await contents(own_db)
    message_out = OutboxMessage("pv.orders.events", b"O-1", b"{}")
    async with (
        PostgresStore(own_pool, MASTER).trial_unit_of_work() as trial,
        trial.previewing() as uow,
    ):
        refused = [
            uow.claim_many([("key", b"hash")]),
            uow.reopen_for_replay(["key"]),
            uow.claim_reuse("key", b"hash"),
            uow.bind_tokens([("issuer", "token", "request")]),
            uow.seal_dead_letter(b"raw", "tenant-a", "CUST-1", "O-1"),
            uow.answer_many([], [message_out]),
        ]
        for write in refused:
            with pytest.raises(WriteInPreviewError):
                await write
        # Nested, as a preview within a preview: still reading, still writing nothing.
        async with uow.previewing() as inner:
            repository = order_repository(inner)
            await repository.save_many(Changes({}))
            assert await repository.record_customer_erasure("tenant-a", "CUST-1") == 1
            assert await repository.destroy_dead_letters_of("tenant-a", "CUST-1") == 0
    assert await contents(own_db) == before
    assert await own_db.fetchval("SELECT count(*) FROM outbox") == 0
