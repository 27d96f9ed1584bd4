"""Servers for the suite: provisioned once per session, isolated per test.

Each test gets its own database (copied from a migrated template) and its own topic prefix, so
tests never see each other's rows or messages, and the suite can run beside `make run`.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.crypto import MasterKey
from service.adapters.database import migrate
from service.app.auth import AuthMode
from service.devstack.processes import free_port
from service.devstack.provision import Endpoints, provisioned
from service.settings import Settings
from tests.support import WireProbe

TEMPLATE_DATABASE = "orders_template"


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    # Not under pytest's tmp_path: pytest prunes old base directories when another session
    # starts, which would delete the data directory of a server still running here.
    with tempfile.TemporaryDirectory(prefix="order-service-stack-") as directory:
        Path(directory).chmod(0o711)  # the embedded Postgres may run as its own user
        with provisioned(Path(directory), durable=False) as endpoints:
            yield endpoints


@pytest.fixture(scope="session")
async def template_database(stack: Endpoints) -> str:
    admin = await asyncpg.connect(_with_database(stack.database_url, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
    finally:
        await admin.close()
    await migrate(_with_database(stack.database_url, TEMPLATE_DATABASE))
    return TEMPLATE_DATABASE


@pytest.fixture
async def database_url(stack: Endpoints, template_database: str) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_with_database(stack.database_url, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
        yield _with_database(stack.database_url, name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def master_key_text() -> str:
    return MasterKey.generate_text()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(
    stack: Endpoints, database_url: str, topic_prefix: str, master_key_text: str
) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        kafka_idempotent_producer=stack.kafka_idempotent_producer,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}service",
        health_port=free_port(),
        relay_poll_interval_seconds=0.2,
        kafka_session_timeout_ms=2000,
        topic_replication_factor=1,
        retry_max_backoff_seconds=0.5,
        master_key=SecretStr(master_key_text),
        # Most tests are about decisions, not tokens: they name their actors in the envelope.
        # The token gate has tests of its own (test_verified_actors, test_trust_boundaries).
        auth_mode=AuthMode.OFF,
        auth_allow_claimed_actors=True,
    )


@pytest.fixture
def topics(topic_prefix: str) -> DocumentTopics:
    return DocumentTopics.for_family(PURCHASE_ORDERS, topic_prefix)


@pytest.fixture
async def probe(
    stack: Endpoints, topics: DocumentTopics, topic_prefix: str
) -> AsyncIterator[WireProbe]:
    wire = WireProbe(stack.kafka_bootstrap_servers, topics, f"{topic_prefix}{INVENTORY_MOVEMENTS}")
    await wire.start()
    yield wire
    await wire.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Unit tests first: they fail fastest.
    items.sort(key=lambda item: 0 if "tests/unit" in str(Path(str(item.fspath))) else 1)


@pytest.fixture
async def stack_admin(stack: Endpoints) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's maintenance database, for faults a test injects."""
    conn = await asyncpg.connect(_with_database(stack.database_url, "postgres"))
    yield conn
    await conn.close()


@pytest.fixture
async def order_probe(stack: Endpoints, topic_prefix: str) -> AsyncIterator[WireProbe]:
    """Like `probe`, for customer orders."""
    wire = WireProbe(
        stack.kafka_bootstrap_servers,
        DocumentTopics.for_family(ORDERS, topic_prefix),
        f"{topic_prefix}{INVENTORY_MOVEMENTS}",
        id_field="order_id",
    )
    await wire.start()
    yield wire
    await wire.stop()
