"""Publishing from memory against real Postgres and Kafka: which rows a batch publishes itself,
which it leaves to the relay, and the relay never overtaking a row an instance still publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from service.adapters.crypto import MasterKey, new_key
from service.adapters.database import create_pool
from service.adapters.direct_publisher import DirectPublisher
from service.adapters.kafka import PUBLISHER_BATCH_BYTES, make_producer
from service.adapters.kafka_connection import KafkaConnection
from service.adapters.relay import OutboxRelay
from service.adapters.unit_of_work import PostgresStore
from service.app.ports import OutboxMessage
from service.devstack.provision import Endpoints
from tests.integration.test_outbox_relay import read
from tests.support import create_topics, eventually

MASTER = MasterKey(new_key())


async def insert(
    conn: asyncpg.Connection, topic: str, key: str, value: str, *, direct: bool
) -> int:
    # `direct`: meant to be published from memory by an instance that is not this test's.
    row_id: int = await conn.fetchval(
        "INSERT INTO outbox (topic, message_key, payload, publisher) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        topic,
        key.encode(),
        value.encode(),
        12345 if direct else None,
    )
    return row_id


async def queue(store: PostgresStore, *messages: OutboxMessage) -> None:
    """`messages` queued by one batch, committed."""
    async with store.unit_of_work() as uow:
        await uow.answer_many([], messages)


async def sent_and_deleted(
    db: asyncpg.Connection,
    publisher: DirectPublisher,
    total: int,
    topic: str | None = None,
    key: bytes | None = None,
) -> None:
    """Wait until no row (of `key` on `topic`, when given) is left and the publisher has
    counted `total`: it counts a round once its rows' delete has returned."""

    async def done() -> bool:
        left = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE ($1::text IS NULL OR topic = $1)"
            " AND ($2::bytea IS NULL OR message_key = $2)",
            topic,
            key,
        )
        return not left and publisher.published_total >= total

    await eventually(done, timeout=30, what=f"{total} rows sent from memory and deleted")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 2)
    yield pool
    await pool.close()


@pytest.fixture
async def replies(stack: Endpoints, topic_prefix: str) -> str:
    """A reply topic, and the prefix that makes it one."""
    name = f"{topic_prefix}replies.tenant-a"
    await create_topics(KafkaConnection(stack.kafka_bootstrap_servers), [name], 1)
    return name


@pytest.fixture
async def publisher(
    stack: Endpoints, pool: asyncpg.Pool, topic_prefix: str
) -> AsyncIterator[DirectPublisher]:
    connection = KafkaConnection(stack.kafka_bootstrap_servers)
    publisher = DirectPublisher(
        lambda: make_producer(
            connection,
            idempotent=stack.kafka_idempotent_producer,
            role="publisher",
            batch_bytes=PUBLISHER_BATCH_BYTES,
        ),
        pool,
        reply_prefixes=(f"{topic_prefix}replies.",),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(publisher.run(stop))
    await eventually(lambda: publisher.running, what="the publisher running")
    yield publisher
    stop.set()
    await running


async def test_a_key_with_another_instances_row_waiting_goes_to_the_relay_behind_it(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    publisher: DirectPublisher,
    pool: asyncpg.Pool,
    topic: str,
    replies: str,
    topic_prefix: str,
) -> None:
    # Meant to be published from memory by an instance that died before it could.
    orphan = await insert(db, topic, "K1", "v1", direct=True)
    store = PostgresStore(pool, MASTER, publisher=publisher)
    await queue(
        store,
        OutboxMessage(topic, b"K1", b"v2"),
        OutboxMessage(topic, b"K2", b"w1"),
        OutboxMessage(replies, b"K3", b"reply"),
    )

    await sent_and_deleted(db, publisher, 1, topic, b"K2")
    # K1: the other instance's row stays its own (it may still be sending it); the successor
    # is the relay's, and so is the reply.
    rows = await db.fetch(
        "SELECT id, message_key, publisher IS NOT NULL AS direct FROM outbox ORDER BY id"
    )
    assert [(bytes(r["message_key"]), r["direct"]) for r in rows] == [
        (b"K1", True),
        (b"K1", False),
        (b"K3", False),
    ]
    assert rows[0]["id"] == orphan
    assert publisher.published_total == 1
    prefixes = (f"{topic_prefix}replies.",)
    waiting = OutboxRelay(
        database_url, producer, sweep_after_seconds=300.0, reply_prefixes=prefixes
    )
    assert await waiting.publish_pending(db) == 1  # the reply; v2 waits behind v1
    sweeping = OutboxRelay(
        database_url, producer, sweep_after_seconds=0.001, reply_prefixes=prefixes
    )
    assert await sweeping.publish_pending(db) == 2  # v1 swept (its instance died), then v2
    seen = await read(stack, topic, 3)
    assert [v for k, v in seen if k == "K1"] == ["v1", "v2"]
    assert [v for k, v in seen if k == "K2"] == ["w1"]


async def test_a_key_with_a_row_left_to_the_relay_goes_to_the_relay_behind_it(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    publisher: DirectPublisher,
    pool: asyncpg.Pool,
    topic: str,
) -> None:
    # Left to the relay: by an instance whose broker failed, or by a build before publishing
    # from memory. The relay has not sent it yet.
    await insert(db, topic, "K1", "v1", direct=False)
    store = PostgresStore(pool, MASTER, publisher=publisher)
    await queue(store, OutboxMessage(topic, b"K1", b"v2"), OutboxMessage(topic, b"K2", b"w1"))

    await sent_and_deleted(db, publisher, 1, topic, b"K2")
    rows = await db.fetch(
        "SELECT message_key, payload, publisher IS NOT NULL AS direct FROM outbox"
        " WHERE topic = $1 ORDER BY id",
        topic,
    )
    assert [(bytes(r["message_key"]), bytes(r["payload"]), r["direct"]) for r in rows] == [
        (b"K1", b"v1", False),
        (b"K1", b"v2", False),
    ]
    relay = OutboxRelay(database_url, producer, sweep_after_seconds=300.0)
    assert await relay.publish_pending(db) == 2
    seen = await read(stack, topic, 3)
    assert [v for k, v in seen if k == "K1"] == ["v1", "v2"]


async def test_a_key_with_only_this_instances_own_rows_waiting_is_published_from_memory(
    db: asyncpg.Connection, publisher: DirectPublisher, pool: asyncpg.Pool, topic: str
) -> None:
    # A hot key (a stock item's movements) has rows of this instance waiting at any time; its
    # own rows go out in commit order through its queue, so they hold nothing back. This one
    # stands for a row it is still sending.
    await db.execute(
        "INSERT INTO outbox (topic, message_key, payload, publisher) VALUES ($1, 'K', 'v1', $2)",
        topic,
        publisher.instance,
    )
    store = PostgresStore(pool, MASTER, publisher=publisher)
    await queue(store, OutboxMessage(topic, b"K", b"v2"))

    await eventually(lambda: publisher.published_total >= 1, what="v2 sent from memory")
    rows = await db.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", topic)
    assert [bytes(r["payload"]) for r in rows] == [b"v1"]  # v2 was sent and deleted


async def test_a_key_waiting_on_another_topic_holds_nothing_back(
    db: asyncpg.Connection, publisher: DirectPublisher, pool: asyncpg.Pool, topic: str
) -> None:
    # The unit of order is a topic and a key: a row of key K2 waiting on another topic (the
    # relay's) and of K1 on this one (another instance's) are looked up as the batch inserts.
    elsewhere = await insert(db, f"{topic}.elsewhere", "K2", "x", direct=False)
    orphan = await insert(db, topic, "K1", "v1", direct=True)
    store = PostgresStore(pool, MASTER, publisher=publisher)
    await queue(
        store,
        OutboxMessage(topic, b"K1", b"v2"),
        OutboxMessage(topic, b"K2", b"w1"),
        OutboxMessage(topic, b"K1", b"v3"),
    )

    await sent_and_deleted(db, publisher, 1, topic, b"K2")
    rows = await db.fetch(
        "SELECT id, message_key, payload, publisher IS NOT NULL AS direct FROM outbox ORDER BY id"
    )
    assert [(bytes(r["message_key"]), bytes(r["payload"]), r["direct"]) for r in rows] == [
        (b"K2", b"x", False),
        (b"K1", b"v1", True),
        (b"K1", b"v2", False),
        (b"K1", b"v3", False),
    ]
    assert [rows[0]["id"], rows[1]["id"]] == [elsewhere, orphan]
    assert publisher.published_total == 1


async def test_the_relay_never_overtakes_a_row_an_instance_still_publishes(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    await insert(db, topic, "K", "v1", direct=True)  # young: its instance is sending it
    await insert(db, topic, "K", "v2", direct=False)  # left to the relay, by an older version
    await insert(db, topic, "L", "x", direct=False)
    other = f"{topic}-other"
    await create_topics(KafkaConnection(stack.kafka_bootstrap_servers), [other], 1)
    await insert(db, other, "K", "y", direct=False)  # another topic: not behind v1
    waiting = OutboxRelay(database_url, producer, sweep_after_seconds=300.0)
    assert await waiting.publish_pending(db) == 2  # x and y; v2 waits behind v1
    left = await db.fetch("SELECT payload FROM outbox ORDER BY id")
    assert [bytes(row["payload"]) for row in left] == [b"v1", b"v2"]
    sweeping = OutboxRelay(database_url, producer, sweep_after_seconds=0.001)
    await asyncio.sleep(0.01)
    assert await sweeping.publish_pending(db) == 2  # v1 swept, then v2, in id order
    assert not await db.fetchval("SELECT count(*) FROM outbox")


async def test_more_than_a_batch_for_one_partition_goes_out_over_rounds_in_order(
    stack: Endpoints,
    db: asyncpg.Connection,
    publisher: DirectPublisher,
    pool: asyncpg.Pool,
    topic: str,
) -> None:
    """60 messages of 20 KB for one key: more than one 512 KiB batch of its partition, so the
    publisher sends them over several rounds, without waiting for another commit."""
    store = PostgresStore(pool, MASTER, publisher=publisher)
    padding = "x" * 20_000
    async with store.unit_of_work() as uow:
        await uow.answer_many(
            [], [OutboxMessage(topic, b"BIG", f"{n:03d}{padding}".encode()) for n in range(60)]
        )

    await sent_and_deleted(db, publisher, 60)
    assert publisher.published_total == 60
    seen = await read(stack, topic, 60)
    assert [int(value[:3]) for _, value in seen] == list(range(60))


async def test_a_published_row_that_could_not_be_deleted_keeps_its_key_on_the_relays_path(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    publisher: DirectPublisher,
    pool: asyncpg.Pool,
    topic: str,
) -> None:
    """Its deletes fail (as when the pool has no connection to spare): until a retry deletes
    it, a later message of its key goes to the relay, which waits behind it; a sweep of it can
    then never come after the later message."""
    delete = publisher._delete
    failed: list[list[int]] = []
    deletes_fail = True

    async def failing(ids: list[int]) -> bool:
        if deletes_fail:
            failed.append(ids)
            return False
        return await delete(ids)

    publisher._delete = failing  # type: ignore[method-assign]
    store = PostgresStore(pool, MASTER, publisher=publisher)
    async with store.unit_of_work() as uow:
        await uow.answer_many([], [OutboxMessage(topic, b"K", b"v1")])
    await eventually(lambda: bool(failed), what="a delete failed")
    async with store.unit_of_work() as uow:
        await uow.answer_many([], [OutboxMessage(topic, b"K", b"v2")])
    later = await db.fetchrow("SELECT publisher FROM outbox WHERE payload = 'v2'")
    assert later is not None
    assert later["publisher"] is None  # the relay's
    deletes_fail = False

    async def v1_deleted() -> bool:
        return not await db.fetchval("SELECT count(*) FROM outbox WHERE payload = 'v1'")

    await eventually(v1_deleted, what="the delete retried")
    relay = OutboxRelay(database_url, producer, sweep_after_seconds=300.0)
    assert await relay.publish_pending(db) == 1
    seen = await read(stack, topic, 2)
    assert [v for k, v in seen if k == "K"] == ["v1", "v2"]


async def test_a_batch_that_looked_before_a_failover_leaves_its_rows_to_the_relay(
    db: asyncpg.Connection, publisher: DirectPublisher, pool: asyncpg.Pool, topic: str
) -> None:
    """It chose to publish from memory counting on rows the failover has since left to the
    relay: its own rows must follow them there, never go ahead of them."""
    store = PostgresStore(pool, MASTER, publisher=publisher)
    async with store.unit_of_work() as uow:
        await uow.answer_many([], [OutboxMessage(topic, b"K", b"v1")])
        publisher._fail_over("a round the broker refused")  # between its look and its commit
    assert publisher.failovers_total == 1

    async def left_to_the_relay() -> bool:
        marked = await db.fetchval("SELECT publisher FROM outbox WHERE payload = 'v1'")
        return marked is None

    await eventually(left_to_the_relay, what="the row marked as the relay's")
    assert publisher.published_total == 0
