"""Fixtures against the real Postgres and broker: a pool, the relay's producer, a topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from service.adapters.database import create_pool
from service.adapters.kafka import make_producer
from service.adapters.kafka_connection import KafkaConnection
from service.devstack.provision import Endpoints
from tests.support import create_topics


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 8)
    yield pool
    await pool.close()


@pytest.fixture
async def producer(stack: Endpoints) -> AsyncIterator[AIOKafkaProducer]:
    """The relay's producer, as the service configures it."""
    producer = make_producer(
        KafkaConnection(stack.kafka_bootstrap_servers),
        idempotent=stack.kafka_idempotent_producer,
    )
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def topic(stack: Endpoints, topic_prefix: str) -> str:
    """A topic of this test's own, of three partitions."""
    name = f"{topic_prefix}relay"
    await create_topics(KafkaConnection(stack.kafka_bootstrap_servers), [name], 3)
    return name
