"""The process model of a cluster deployment, on the real servers: a migration Job before the
service (which may not change the schema itself), the relay as a deployment of its own, and a
relay child that never outlives the `serve` that started it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.adapters.database import migrations
from service.devstack.processes import free_port
from service.devstack.provision import Endpoints
from service.settings import Settings
from tests.support import (
    ServiceProcess,
    WireProbe,
    create,
    eventually,
    http_get,
    order_service,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def empty_database_url(
    stack: Endpoints, stack_admin: asyncpg.Connection
) -> AsyncIterator[str]:
    """A database nothing was ever applied to, as a cluster's new database is."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    await stack_admin.execute(f"CREATE DATABASE {name}")
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    await stack_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def _health(port: int) -> dict[str, Any] | None:
    status, body = await asyncio.to_thread(http_get, port, "/health")
    return json.loads(body) if status in (200, 503) else None


def _running(pid: int) -> bool:
    """Whether the process runs; a zombie nobody has reaped yet has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


async def test_serve_refuses_a_schema_it_may_not_migrate_and_says_what_to_run(
    settings: Settings, empty_database_url: str
) -> None:
    empty = settings.model_copy(
        update={"database_url": empty_database_url, "migrate_on_start": False}
    )
    refused = await order_service(empty, "serve")
    assert refused.code != 0
    assert f"{len(migrations())} migration(s) pending" in refused.stderr
    assert "run `order-service migrate`" in refused.stderr
    # It changed nothing: not even the table that tracks migrations.
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()

    missing = settings.model_copy(update={"database_url": empty_database_url + "_missing"})
    failed = await order_service(missing, "migrate")
    assert failed.code == 1
    assert failed.stderr.startswith("migration failed: ")
    assert "does not exist" in failed.stderr


async def test_a_migration_job_then_serve_without_migrating_decides_commands(
    settings: Settings, empty_database_url: str, probe: WireProbe, tmp_path: Path
) -> None:
    empty = settings.model_copy(
        update={"database_url": empty_database_url, "migrate_on_start": False}
    )
    migrated = await order_service(empty, "migrate")
    assert migrated.code == 0, migrated.stderr
    assert migrated.stdout.splitlines() == [f"applied {name}" for _, name, _ in migrations()]
    again = await order_service(empty, "migrate")
    assert (again.code, again.stdout.strip()) == (0, "schema is up to date")

    service = ServiceProcess(empty, tmp_path / "service.log")
    service.start()
    try:
        created = await probe.send_and_wait(create("PO-M1"))
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
    assert created.topic == probe.topics.events


async def test_a_relay_of_its_own_publishes_what_serve_no_relay_decides(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # Not publishing from memory either: everything is left to the relay deployment.
    service = ServiceProcess(
        settings.model_copy(update={"publish_from_memory": False}),
        tmp_path / "service.log",
        command=("serve", "--no-relay"),
    )
    relay_port = free_port()
    relay = ServiceProcess(
        settings.model_copy(update={"health_port": relay_port}),
        tmp_path / "relay.log",
        command=("relay",),
    )
    body = create("PO-R1")
    service.start()
    try:
        await probe.send(body)

        async def decided() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM outbox"))

        await eventually(decided, timeout=60, what="the outcome in the outbox")
        health = await _health(settings.health_port)
        assert health is not None
        assert health["checks"]["relay"] == "external"
        assert health["status"] == "ok"
        await asyncio.sleep(1.0)  # a relay in `serve` would have published it by now
        assert not probe.outcomes(body["command_id"])

        relay.start()
        outcome = await probe.outcome(body["command_id"])
        assert outcome.topic == probe.topics.events

        ready, _ = await asyncio.to_thread(http_get, relay_port, "/health/ready")
        assert ready == 200
        status, metrics = await asyncio.to_thread(http_get, relay_port, "/metrics")
        assert status == 200
        assert b"order_service_relay_leader 1.0" in metrics

        async def counted() -> bool:
            # The count follows the delete of the published rows, a moment after the broker.
            relay_health = await _health(relay_port)
            return (
                relay_health is not None and relay_health["checks"]["relay"]["published_total"] >= 1
            )

        await eventually(counted, timeout=10, what="the relay counts what it published")

        relay.stop()  # SIGTERM
        assert relay.returncode == 0
    except BaseException:
        print(service.log(), relay.log())
        raise
    finally:
        relay.stop()
        service.stop()


async def test_a_relay_child_stops_when_serve_is_killed(settings: Settings, tmp_path: Path) -> None:
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    pid: int | None = None
    try:

        async def relay_running() -> bool:
            nonlocal pid
            health = await _health(settings.health_port)
            pid = health["checks"]["relay"].get("pid") if health is not None else None
            return pid is not None

        await eventually(relay_running, timeout=60, what="the relay child")
        assert pid is not None
        service.kill()
        killed_at = time.monotonic()
        await eventually(lambda: not _running(pid), timeout=5, what="the orphan relay exits")
        print(f"the relay child exited {time.monotonic() - killed_at:.2f} s after its parent")
        assert "the parent process is gone; stopping the relay" in service.log()
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGKILL)
