"""Kafka producer and topic administration, shaped for the outbox relay's guarantees."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.adapters.kafka_connection import KafkaConnection

log = logging.getLogger(__name__)


def make_producer(connection: KafkaConnection, *, idempotent: bool) -> AIOKafkaProducer:
    # acks=all: a message counts as published only once every in-sync replica has it.
    return AIOKafkaProducer(
        **connection.client_options(),
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=2,
        request_timeout_ms=15_000,
        max_request_size=4 * 1024 * 1024,
    )


async def ensure_topics(
    connection: KafkaConnection, topics: Iterable[str], partitions: int
) -> None:
    """Create missing topics; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(**connection.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
        )
        for name, code, *_ in getattr(response, "topic_errors", []):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating topic {name} failed with Kafka error code {code}")
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
