"""Outcomes published from memory right after their commit, with the outbox as the recovery
path, on the real servers: the service killed with SIGKILL after a commit before the publish,
and after the publish before the outbox rows are deleted, and a broker that stops answering
while outcomes are in flight. Every outcome is published (at least once, with its event id),
each document's events first seen in version order, and the outbox drains."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import pytest

from contracts.topics import INVENTORY_MOVEMENTS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.locks import LockSpace, lock_name, lock_striped
from service.devstack.embedded import EmbeddedKafka
from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import (
    Record,
    ServiceProcess,
    WireProbe,
    change_status,
    create,
    eventually,
    http_get,
)

pytestmark = pytest.mark.slow

DOCUMENTS = 40


async def all_published_in_order(probe: WireProbe, db: asyncpg.Connection) -> list[Record]:
    """Each document created and opened once, its events first seen in version order, nothing
    left in the outbox; returns every event record as it arrived, repeats included."""
    await eventually(
        lambda: len({r.body["event_id"] for r in probe.on(probe.topics.events)}) >= 2 * DOCUMENTS,
        timeout=120,
        what="every event published",
    )

    async def drained() -> bool:
        return not await db.fetchval("SELECT count(*) FROM outbox")

    await eventually(drained, timeout=60, what="outbox drained")
    await asyncio.sleep(1.0)  # a repeat still on its way would arrive by now
    events = probe.on(probe.topics.events)
    first: dict[str, Record] = {}
    for record in events:
        first.setdefault(record.body["event_id"], record)
    versions: dict[str, list[int]] = defaultdict(list)
    for record in first.values():
        versions[record.body["purchase_order_id"]].append(record.body["version"])
    assert versions == {f"PO-{n}": [1, 2] for n in range(DOCUMENTS)}
    assert not probe.on(probe.topics.rejections)
    assert await db.fetchval("SELECT count(*) FROM purchase_order_history") == 2 * DOCUMENTS
    return events


async def send_creates(probe: WireProbe) -> None:
    for n in range(DOCUMENTS):
        await probe.send(create(f"PO-{n}"))


async def send_opens(probe: WireProbe) -> None:
    for n in range(DOCUMENTS):
        await probe.send(change_status(f"PO-{n}", "open"))


def sweeping_after(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(update={"outbox_sweep_after_seconds": seconds})


@pytest.mark.parametrize("point", ["after_commit", "after_publish"])
async def test_sigkill_around_the_publish_loses_nothing_and_keeps_order(
    point: str, settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # The crashing instance's relay child must not sweep before it notices its parent died;
    # the next instance's relay sweeps what it finds after two seconds.
    crashing = ServiceProcess(
        sweeping_after(settings, 300.0),
        tmp_path / "crashing.log",
        module="tests.crash_points",
        env={"CRASH_POINT": point},
    )
    service = ServiceProcess(sweeping_after(settings, 2.0), tmp_path / "service.log")
    crashing.start()
    try:
        await send_creates(probe)
        await eventually(
            lambda: crashing.returncode is not None, timeout=120, what="the crash point reached"
        )
        assert crashing.returncode == -signal.SIGKILL
        # Decided and committed, and still in the outbox: the crash came before its cleanup.
        left = await db.fetch("SELECT publisher IS NOT NULL AS direct FROM outbox")
        assert left
        assert all(row["direct"] for row in left)
        if point == "after_publish":
            # The first round was published; later batches may have committed meanwhile.
            await eventually(
                lambda: bool(probe.on(probe.topics.events)), timeout=30, what="the first round"
            )
            await asyncio.sleep(1.0)
        published_before = len(probe.on(probe.topics.events))
        if point == "after_commit":
            assert published_before == 0
        else:
            assert 0 < published_before <= len(left)
        service.start()
        await send_opens(probe)
        events = await all_published_in_order(probe, db)
    except BaseException:
        print(crashing.log())
        if service.started:
            print(service.log())
        raise
    finally:
        crashing.stop()
        service.stop()
    if point == "after_publish":
        # The relay published the rows again, with the same event ids: at least once.
        repeats = Counter(record.body["event_id"] for record in events)
        assert sum(count - 1 for count in repeats.values()) >= published_before


async def test_a_broker_outage_between_commit_and_publish_loses_nothing(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A broker of its own. The service fetches the creates and waits for their documents'
    locks (held here); the broker is stopped (SIGSTOP); the locks are let go, so the batch
    commits while the broker does not answer; the publish fails over to the relay; the broker
    goes on (SIGCONT), and everything is published, in order."""
    broker = EmbeddedKafka(free_port(), tmp_path / "broker.log")
    broker.start()
    # A long sweep: what the outage stops is handed to the relay, not swept.
    settings = sweeping_after(settings, 300.0).model_copy(
        update={"kafka_bootstrap_servers": broker.bootstrap_servers}
    )
    probe = WireProbe(
        broker.bootstrap_servers,
        DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix),
        f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
    )
    await probe.start()
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    assert broker.pid is not None
    held = db.transaction()
    try:
        await eventually(lambda: ready(settings.health_port), timeout=120, what="ready")
        await held.start()
        names = [lock_name("tenant-a", f"PO-{n}") for n in range(DOCUMENTS)]
        await lock_striped(db, LockSpace.DOCUMENTS, names)
        await send_creates(probe)

        async def batch_waits_for_locks() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            )

        await eventually(batch_waits_for_locks, timeout=60, what="a batch waiting for the locks")
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            await held.rollback()
            await eventually(
                lambda: failovers(settings.health_port) > 0,
                timeout=60,
                what="the publish failed over to the relay",
            )
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        await send_opens(probe)
        await all_published_in_order(probe, db)
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
        await probe.stop()
        broker.stop()


async def ready(port: int) -> bool:
    status, _ = await asyncio.to_thread(http_get, port, "/health/ready")
    return status == 200


def failovers(port: int) -> int:
    _, body = http_get(port, "/health")
    if not body:
        return 0
    publisher = json.loads(body)["checks"]["publisher"]
    return int(publisher["failovers_total"])
