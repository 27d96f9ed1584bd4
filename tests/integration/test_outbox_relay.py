"""The outbox relay against real Postgres and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from service.adapters.kafka_connection import KafkaConnection
from service.adapters.relay import OutboxRelay
from service.devstack.provision import Endpoints
from tests.support import create_topics, eventually


async def insert(conn: asyncpg.Connection, topic: str, key: str, value: str) -> int:
    row_id: int = await conn.fetchval(
        "INSERT INTO outbox (topic, message_key, payload) VALUES ($1, $2, $3) RETURNING id",
        topic,
        key.encode(),
        value.encode(),
    )
    return row_id


async def read(stack: Endpoints, topic: str, expected: int) -> list[tuple[str, str]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[tuple[str, str]] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < expected:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    seen += [(r.key.decode(), r.value.decode()) for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_rows_are_published_in_id_order_per_key_and_marked(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    for i in range(300):
        await insert(db, topic, f"K{i % 7}", str(i))
    relay = OutboxRelay(database_url, producer, batch_size=64)
    while await relay.publish_pending(db):
        pass
    seen = await read(stack, topic, 300)
    for key in {k for k, _ in seen}:
        values = [int(v) for k, v in seen if k == key]
        assert values == sorted(values), f"key {key} out of order"
    assert sorted(int(v) for _, v in seen) == list(range(300))
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_row_that_commits_after_a_later_id_is_still_published(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    slow = await asyncpg.connect(database_url)
    try:
        async with slow.transaction():
            early_id = await insert(slow, topic, "A", "committed-late")
            late_id = await insert(db, topic, "B", "committed-first")
            assert early_id < late_id
            relay = OutboxRelay(database_url, producer)
            assert await relay.publish_pending(db) == 1
        assert await relay.publish_pending(db) == 1, "a high-water mark would skip this row"
    finally:
        await slow.close()
    assert sorted(await read(stack, topic, 2)) == [
        ("A", "committed-late"),
        ("B", "committed-first"),
    ]


async def test_only_one_relay_leads_and_the_other_takes_over(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first = OutboxRelay(database_url, producer, poll_interval_seconds=0.05)
    second = OutboxRelay(database_url, producer, poll_interval_seconds=0.05)
    first_task = asyncio.create_task(first.run(stop_first))
    await asyncio.sleep(0.5)
    second_task = asyncio.create_task(second.run(stop_second))
    try:
        await asyncio.sleep(0.5)
        assert (first.status.leader, second.status.leader) == (True, False)
        stop_first.set()
        await first_task
        await insert(db, topic, "A", "after-failover")
        await eventually(lambda: second.status.leader and second.status.published_total >= 1)
    finally:
        stop_first.set()
        stop_second.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(first_task, second_task)
    assert await read(stack, topic, 1) == [("A", "after-failover")]


async def test_notify_wakes_the_relay_before_its_poll_interval(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    stop = asyncio.Event()
    relay = OutboxRelay(database_url, producer, poll_interval_seconds=3600)
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: relay.status.leader)
        await asyncio.sleep(0.2)
        async with db.transaction():
            await insert(db, topic, "N", json.dumps({"woken": True}))
            await db.execute("NOTIFY outbox_pending")
        await eventually(lambda: relay.status.published_total >= 1, timeout=10)
    finally:
        stop.set()
        await task


async def test_a_reply_the_broker_will_not_take_is_given_up_and_holds_nothing_up(
    stack: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
    topic_prefix: str,
) -> None:
    # A reply goes where its sender said: a topic that is gone, forbidden or too small for it
    # must not stall the outbox. Too large for any topic is the fault the broker gives here.
    replies = f"{topic_prefix}replies.tenant-a"
    await create_topics(KafkaConnection(stack.kafka_bootstrap_servers), [replies], 1)
    await insert(db, topic, "K", "before")
    await insert(db, replies, "cmd-1", "x" * (5 * 1024 * 1024))
    await insert(db, replies, "cmd-2", "a reply that fits")
    await insert(db, topic, "K", "after")
    relay = OutboxRelay(database_url, producer, reply_prefixes=(f"{topic_prefix}replies.",))
    assert await relay.publish_pending(db) == 4
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert relay.status.replies_dropped == 1
    assert await read(stack, topic, 2) == [("K", "before"), ("K", "after")]
    assert await read(stack, replies, 1) == [("cmd-2", "a reply that fits")]


async def test_an_event_the_broker_will_not_take_is_never_given_up(
    database_url: str, db: asyncpg.Connection, producer: AIOKafkaProducer, topic: str
) -> None:
    await insert(db, topic, "K", "x" * (5 * 1024 * 1024))
    relay = OutboxRelay(database_url, producer, reply_prefixes=("replies.",))
    with pytest.raises(MessageSizeTooLargeError):
        await relay.publish_pending(db)
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
