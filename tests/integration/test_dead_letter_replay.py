"""A replayed dead letter is the message as it arrived, named as a replay, with the actor token
the operator gives (letters never keep one)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaConsumer

from service.adapters.dead_letters import DeadLetter, Original, replay
from service.adapters.kafka import ensure_topics
from service.adapters.kafka_connection import KafkaConnection
from service.infra.provision import Endpoints


async def test_a_replay_carries_the_operators_token_and_names_its_origin(
    stack: Endpoints, db: asyncpg.Connection, topic_prefix: str
) -> None:
    connection = KafkaConnection(stack.kafka_bootstrap_servers)
    commands = f"{topic_prefix}orders.commands"
    await ensure_topics(connection, [commands], 1)
    letter = DeadLetter(f"{commands}.dlq", 0, 7, 0, b"src", b"sealed", (), {})
    original = Original(b"O-1", b'{"type": "order.delete"}', (("traceparent", b"00-ab-cd-01"),))
    await replay(connection, commands, db, [(letter, original)], token="abc.def.ghi")

    consumer = AIOKafkaConsumer(
        commands, bootstrap_servers=stack.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"O-1", b'{"type": "order.delete"}')
    assert dict(record.headers) == {
        "traceparent": b"00-ab-cd-01",
        "authorization": b"Bearer abc.def.ghi",
        "x-replayed-from": f"{commands}.dlq/0/7".encode(),
    }
    assert (
        await db.fetchval(
            'SELECT action FROM dead_letter_actions WHERE topic = $1 AND "offset" = 7',
            f"{commands}.dlq",
        )
        == "replayed"
    )
