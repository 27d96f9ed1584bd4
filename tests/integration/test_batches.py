"""Batches decided in one transaction against a real Postgres: order within a batch, isolation
of a bad command (one the save refuses or the messages cannot be built for, while the save is in
Postgres), and redelivery of a committed batch."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import count
from typing import Any

import asyncpg

from contracts.headers import DEAD_LETTER_REASON
from service.adapters.crypto import MasterKey, new_key
from service.adapters.headers import decode_headers
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider, Output
from service.app.parse import ValidCommand
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from service.app.retry import RetryPolicy
from tests.failing_decider import FailsOn
from tests.support import change_status, create

FAMILY = purchase_order_family("it.")
TOPICS = FAMILY.topics
MASTER = MasterKey(new_key())
SIGNER = Signer(new_key(), "it")
offsets = count()
FAST_RETRY = RetryPolicy(first_backoff_seconds=0.01, max_backoff_seconds=0.05)


def message(body: dict[str, Any] | bytes, key: str = "PO-1") -> IncomingMessage:
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    return IncomingMessage("it.cmds", 0, next(offsets), 1, key.encode(), value)


def processor(pool: asyncpg.Pool, decider: Any = None) -> CommandProcessor[Any]:
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        decider or DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=FAST_RETRY,
    )


async def published(db: asyncpg.Connection, topic: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", topic)
    return [json.loads(row["payload"]) for row in rows]


async def test_commands_for_one_document_in_one_batch_see_each_other(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    batch = [
        message(create("PO-1")),
        message(change_status("PO-1", "open", expected_version=1)),
        message(change_status("PO-1", "closed")),  # refused: open -> closed is not allowed
        message(change_status("PO-1", "receiving", expected_version=2)),
    ]
    outcomes = await processor(pool).process_batch(batch)
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    events = await published(db, TOPICS.events)
    assert [(e["type"], e["version"]) for e in events] == [
        ("purchase_order.created", 1),
        ("purchase_order.status_changed", 2),
        ("purchase_order.status_changed", 3),
    ]
    [rejection] = await published(db, TOPICS.rejections)
    assert rejection["errors"][0]["error_code"] == "invalid_status"
    row = await db.fetchrow("SELECT status, version FROM purchase_orders")
    assert (row["status"], row["version"]) == ("receiving", 3)
    assert await db.fetchval("SELECT count(*) FROM purchase_order_history") == 3


async def test_a_poison_message_in_the_middle_of_a_batch_costs_only_itself(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    poison = create("PO-2")
    poison["payload"]["products"] = []
    batch = [
        message(create("PO-1"), "PO-1"),
        message(b"\xff{not json", "PO-X"),
        message(poison, "PO-2"),
        message(create("PO-3"), "PO-3"),
    ]
    outcomes = await processor(pool).process_batch(batch)
    assert outcomes == [
        Outcome.ACCEPTED,
        Outcome.DEAD_LETTERED,
        Outcome.DEAD_LETTERED,
        Outcome.ACCEPTED,
    ]
    assert len(await published(db, TOPICS.events)) == 2
    assert (
        await db.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", TOPICS.dead_letters) == 2
    )


async def test_an_exception_in_one_decision_is_isolated_and_the_rest_commit(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    decider = FailsOn(DocumentDecider(FAMILY, "it.movements"), "PO-BUG", RuntimeError("a defect"))
    ids = ["PO-1", "PO-2", "PO-BUG", "PO-3", "PO-4"]
    batch = [message(create(document_id), document_id) for document_id in ids]
    outcomes = await processor(pool, decider).process_batch(batch)
    assert outcomes == [Outcome.ACCEPTED] * 2 + [Outcome.PARKED] + [Outcome.ACCEPTED] * 2
    assert decider.batch_sizes[0] == 5, "the whole batch is tried first"
    assert min(decider.batch_sizes) == 1, "split until the culprit stands alone"
    events = await published(db, TOPICS.events)
    assert sorted(e["purchase_order_id"] for e in events) == ["PO-1", "PO-2", "PO-3", "PO-4"]
    [rejection] = await published(db, TOPICS.rejections)
    assert rejection["purchase_order_id"] == "PO-BUG"
    assert rejection["errors"][0]["error_code"] == "processing_failed"


async def test_a_save_postgres_refuses_while_the_messages_are_built_costs_only_its_command(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """A batch's versions go to Postgres while its messages are built (service/app/overlap.py).
    A save Postgres refuses fails the transaction once they are built; nothing of it commits,
    and the batch is split around the command as for any other failure."""
    await db.execute(
        """
        CREATE FUNCTION refuse_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.document_id = 'PO-REFUSED' THEN RAISE EXCEPTION 'history refused'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_history BEFORE INSERT ON document_history
            FOR EACH ROW EXECUTE FUNCTION refuse_history();
        """
    )
    ids = ["PO-1", "PO-2", "PO-REFUSED", "PO-3", "PO-4"]
    batch = [message(create(document_id), document_id) for document_id in ids]
    outcomes = await processor(pool).process_batch(batch)
    assert outcomes == [Outcome.ACCEPTED] * 2 + [Outcome.PARKED] + [Outcome.ACCEPTED] * 2
    events = await published(db, TOPICS.events)
    assert sorted(e["purchase_order_id"] for e in events) == ["PO-1", "PO-2", "PO-3", "PO-4"]
    assert await db.fetchval(
        "SELECT array_agg(purchase_order_id ORDER BY purchase_order_id) FROM purchase_orders"
    ) == ["PO-1", "PO-2", "PO-3", "PO-4"]
    assert await db.fetchval("SELECT count(*) FROM document_history") == 4
    [rejection] = await published(db, TOPICS.rejections)
    assert rejection["purchase_order_id"] == "PO-REFUSED"
    assert rejection["errors"][0]["error_code"] == "processing_failed"
    assert b"history refused" in await dead_letter_reason(db)


async def dead_letter_reason(db: asyncpg.Connection) -> bytes:
    """The reason header of the one dead letter waiting in the outbox."""
    [headers] = await db.fetchval(
        "SELECT array_agg(headers) FROM outbox WHERE topic = $1", TOPICS.dead_letters
    )
    reason: bytes = dict(decode_headers(headers))[DEAD_LETTER_REASON]
    return reason


class FailsBuilding(DocumentDecider[Any]):
    """Builds the messages of one document with a defect, after its versions are drafted."""

    def build_messages(self, cmd: ValidCommand[Any], output: Output[Any], now: datetime) -> None:
        if cmd.document_id == "PO-BUG":
            raise RuntimeError("a defect building messages")
        super().build_messages(cmd, output, now)


async def test_a_defect_building_messages_while_the_save_runs_is_the_error_that_counts(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """The defect is raised only once the save has answered: the transaction rolls back on an
    idle connection, the defect (not a busy connection) is what the command is parked for, and
    the pool's connections decide the next batch."""
    decider = FailsBuilding(FAMILY, "it.movements")
    ids = ["PO-1", "PO-2", "PO-BUG", "PO-3", "PO-4"]
    batch = [message(create(document_id), document_id) for document_id in ids]
    outcomes = await processor(pool, decider).process_batch(batch)
    assert outcomes == [Outcome.ACCEPTED] * 2 + [Outcome.PARKED] + [Outcome.ACCEPTED] * 2
    assert (
        await db.fetchval("SELECT count(*) FROM document_history WHERE document_id = 'PO-BUG'") == 0
    )
    reason = await dead_letter_reason(db)
    assert reason == b"unexpected failure: RuntimeError: a defect building messages"
    after = [message(change_status(document_id, "open"), document_id) for document_id in ids]
    assert (
        await processor(pool).process_batch(after)
        == [Outcome.ACCEPTED] * 2 + [Outcome.REJECTED] + [Outcome.ACCEPTED] * 2
    )
    assert await db.fetchval("SELECT count(*) FROM document_history") == 8


async def test_a_batch_redelivered_after_its_commit_changes_nothing(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """What a crash between the transaction's commit and the offsets' commit leads to."""
    bodies = [create("PO-1"), change_status("PO-1", "open"), create("PO-2")]
    first = [message(body, str(body["purchase_order_id"])) for body in bodies]
    assert await processor(pool).process_batch(first) == [Outcome.ACCEPTED] * 3
    before = await db.fetchval("SELECT count(*) FROM outbox")
    again = [message(body, str(body["purchase_order_id"])) for body in bodies]
    assert await processor(pool).process_batch(again) == [Outcome.DUPLICATE] * 3
    assert await db.fetchval("SELECT count(*) FROM outbox") == before
    assert await db.fetchval("SELECT max(version) FROM purchase_orders") == 2


async def test_a_command_id_repeated_within_a_batch_is_one_command(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    body = create("PO-1")
    reused = {**create("PO-1"), "command_id": body["command_id"]}
    reused["payload"]["warehouse_id"] = "WH-9"
    outcomes = await processor(pool).process_batch([message(body), message(body), message(reused)])
    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.REJECTED]
    [rejection] = await published(db, TOPICS.rejections)
    assert rejection["errors"][0]["error_code"] == "idempotency_key_reused"
    assert len(await published(db, TOPICS.events)) == 1
