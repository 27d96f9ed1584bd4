"""The command processor against a real Postgres: inbox, locking, retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from itertools import count
from typing import Any

import asyncpg
import pytest

from contracts.headers import REPLAYED_FROM
from service.adapters.crypto import MasterKey, new_key
from service.adapters.headers import decode_headers
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer, replay_headers
from service.app.purchase_orders.family import purchase_order_family
from service.app.retry import RetryPolicy
from tests.support import change_status, create

FAMILY = purchase_order_family("it.")
TOPICS = FAMILY.topics
MASTER = MasterKey(new_key())
SIGNER = Signer(new_key(), "it")
offsets = count()


def message(body: dict[str, object]) -> IncomingMessage:
    key = str(body["purchase_order_id"]).encode()
    return IncomingMessage("it.cmds", 0, next(offsets), 1, key, json.dumps(body).encode())


@pytest.fixture
def processor(pool: asyncpg.Pool) -> CommandProcessor[Any]:
    retry = RetryPolicy(first_backoff_seconds=0.02, max_backoff_seconds=0.2)
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=retry,
    )


async def outbox(db: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT topic, message_key FROM outbox ORDER BY id")
    return [(r["topic"], r["message_key"].decode()) for r in rows]


async def test_the_same_command_processed_concurrently_is_applied_once(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    body = create("PO-1")
    outcomes = await asyncio.gather(*(processor.process(message(body)) for _ in range(5)))
    assert sorted(outcomes) == sorted([Outcome.ACCEPTED] + [Outcome.DUPLICATE] * 4)
    assert await outbox(db) == [(TOPICS.events, "PO-1"), (TOPICS.state, "tenant-a/PO-1")]
    assert await db.fetchval("SELECT count(*) FROM inbox") == 1


async def test_racing_creates_of_one_document_let_exactly_one_win(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    outcomes = await asyncio.gather(*(processor.process(message(create("PO-2"))) for _ in range(6)))
    assert sorted(outcomes) == sorted([Outcome.ACCEPTED] + [Outcome.REJECTED] * 5)
    assert await db.fetchval("SELECT version FROM purchase_orders") == 1


async def test_concurrent_changes_of_one_document_get_consecutive_versions(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    await processor.process(message(create("PO-3")))
    first, second = await asyncio.gather(
        processor.process(message(change_status("PO-3", "open"))),
        processor.process(message(change_status("PO-3", "cancelled"))),
    )
    assert Outcome.ACCEPTED in (first, second)
    history = await db.fetch("SELECT version FROM purchase_order_history ORDER BY version")
    assert [h["version"] for h in history] == list(range(1, len(history) + 1))
    events = await db.fetch(
        "SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", TOPICS.events
    )
    versions = [json.loads(e["payload"])["version"] for e in events]
    assert versions == sorted(versions), "outbox id order must be version order per document"


async def test_a_database_outage_delays_a_command_but_never_loses_it(
    processor: CommandProcessor[Any], database_url: str, stack_admin: asyncpg.Connection
) -> None:
    database = database_url.rsplit("/", 1)[1]
    await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
    await stack_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
    )
    pending = asyncio.create_task(processor.process(message(create("PO-4"))))
    await asyncio.sleep(1.0)
    assert not pending.done(), "the processor must keep retrying while the database is away"
    await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    assert await asyncio.wait_for(pending, 30) is Outcome.ACCEPTED


class _BuggyUnitOfWork:
    """A real unit of work whose load fails, as a bug in the service would, for one document."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def lock_documents(self, documents: list[tuple[str, str]]) -> None:
        if any(document_id == "PO-BUG" for _, document_id in documents):
            raise RuntimeError("simulated defect")
        await self._inner.lock_documents(documents)


class _BuggyStore:
    def __init__(self, inner: PostgresStore) -> None:
        self._inner = inner

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Any]:
        async with self._inner.unit_of_work() as uow:
            yield _BuggyUnitOfWork(uow)

    @contextlib.asynccontextmanager
    async def trial_unit_of_work(self) -> AsyncIterator[Any]:
        async with self._inner.trial_unit_of_work() as uow:
            yield _BuggyUnitOfWork(uow)

    async def reachable(self) -> bool:
        return await self._inner.reachable()


async def test_a_message_that_keeps_failing_is_parked_and_processing_goes_on(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    retry = RetryPolicy(first_backoff_seconds=0.01, unexpected_failure_attempts=3)
    processor = CommandProcessor(
        _BuggyStore(PostgresStore(pool, MASTER)),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=retry,
    )
    poison = message(create("PO-BUG"))
    assert await processor.process(poison) is Outcome.PARKED
    assert await processor.process(poison) is Outcome.DUPLICATE
    assert await processor.process(message(create("PO-FINE"))) is Outcome.ACCEPTED

    parked = await db.fetch(
        "SELECT topic, headers FROM outbox WHERE topic = $1", TOPICS.dead_letters
    )
    assert len(parked) == 1
    reason = dict(decode_headers(parked[0]["headers"]))["x-dead-letter-reason"]
    assert b"RuntimeError: simulated defect" in reason
    # Its sender is answered too: a rejection saying it could not be processed.
    [answer] = await db.fetch("SELECT payload FROM outbox WHERE topic = $1", TOPICS.rejections)
    [error] = json.loads(answer["payload"])["errors"]
    assert (error["error_type"], error["error_code"]) == ("system", "processing_failed")
    assert "simulated defect" not in error["message"]
    assert (
        await db.fetchval(
            "SELECT outcome FROM inbox WHERE message_key = $1",
            f"purchase-orders/tenant-a/{json.loads(poison.value or b'{}')['command_id']}",
        )
        == "parked"
    )


async def test_a_replayed_dead_letter_is_decided_once_after_the_fix(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    fast = RetryPolicy(first_backoff_seconds=0.01, unexpected_failure_attempts=2)
    buggy = CommandProcessor(
        _BuggyStore(PostgresStore(pool, MASTER)),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=fast,
    )
    fixed = CommandProcessor(
        PostgresStore(pool, MASTER),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=fast,
    )
    body = create("PO-BUG")
    assert await buggy.process(message(body)) is Outcome.PARKED

    def replayed(body: dict[str, Any] = body) -> IncomingMessage:
        original = message(body)
        headers = replay_headers(
            SIGNER,
            original.topic,
            original.key,
            original.value or b"",
            "it.cmds.dlq/0/7",
            None,
            "operator",
        )
        return replace(original, headers=tuple(headers))

    # Anyone can write the header; only the service's signature makes a replay.
    forged = replace(message(body), headers=((REPLAYED_FROM, b"it.cmds.dlq/0/7"),))
    assert await fixed.process(forged) is Outcome.DUPLICATE

    assert await fixed.process(message(body)) is Outcome.DUPLICATE  # a plain re-send: no
    assert await fixed.process(replayed()) is Outcome.ACCEPTED  # the operator's replay: yes
    assert await fixed.process(replayed()) is Outcome.DUPLICATE  # and only once
    assert await db.fetchval("SELECT count(*) FROM purchase_order_history") == 1

    # A replay that fails again is parked again, so the operator sees a new letter.
    again = create("PO-BUG")
    assert await buggy.process(message(again)) is Outcome.PARKED
    assert await buggy.process(replayed(again)) is Outcome.PARKED
    letters = await db.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", TOPICS.dead_letters)
    assert letters == 3
