"""What a cluster does to the service while commands flow, on the real servers: SIGTERM (as
Kubernetes stops a pod) during 2,000 commands/s offered, and a rollout that starts a new
instance and stops an old one again and again, with a SIGKILL among them. Nothing is lost,
nothing is decided twice, and each document's events keep their order. The figures (how long a
stop took, the longest pause in outcomes while partitions moved) are printed; the README has
them."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import PURCHASE_ORDERS
from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import (
    Record,
    ServiceProcess,
    WireProbe,
    change_status,
    committed_offsets,
    create,
    eventually,
    http_get,
)

pytestmark = pytest.mark.slow

GRACE_SECONDS = 20.0
"""What a stop under load must fit in (the manifests' grace period is longer)."""

PROBE_WINDOW_SECONDS = 15.0
"""How long the manifests' readiness probe lets an instance answer "not ready" before
Kubernetes counts it out (every 5 s, three failures): a rebalance or a busy moment inside it
is not unreadiness."""


def stream(documents: int, lag: int = 50) -> Iterator[tuple[bytes, bytes]]:
    """Kafka key and value of a create for each document and, `lag` documents later, its open:
    two events per document, in version order."""
    for n in range(documents + lag):
        if n < documents:
            yield _encoded(create(f"PO-{n}"))
        if n >= lag:
            yield _encoded(change_status(f"PO-{n - lag}", "open"))


def _encoded(body: dict[str, object]) -> tuple[bytes, bytes]:
    return str(body["purchase_order_id"]).encode(), json.dumps(body).encode()


async def offer(
    bootstrap_servers: str,
    topic: str,
    messages: Iterator[tuple[bytes, bytes]],
    per_second: float,
) -> int:
    """Produce at a steady rate, as a busy sender does, whether or not the service keeps up;
    returns how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    sent: list[asyncio.Future[object]] = []
    try:
        started = loop.time()
        for n, (key, value) in enumerate(messages):
            ahead = started + n / per_second - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            sent.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(sent)


async def ready(port: int) -> bool:
    status, _ = await asyncio.to_thread(http_get, port, "/health/ready")
    return status == 200


async def made_ready(port: int) -> None:
    await eventually(lambda: ready(port), timeout=120, what=f"the instance on {port} ready")


async def ready_as_kubernetes_sees_it(port: int) -> None:
    """Ready now, or again within the probe's window; otherwise fail with the last answer's
    reasons."""
    last: list[tuple[int, bytes]] = []

    async def answered_ready() -> bool:
        last[:] = [await asyncio.to_thread(http_get, port, "/health/ready")]
        return last[0][0] == 200

    try:
        await eventually(answered_ready, timeout=PROBE_WINDOW_SECONDS, what="ready")
    except TimeoutError:
        status, body = last[0] if last else (0, b"")
        raise AssertionError(
            f"instance on {port} not ready for {PROBE_WINDOW_SECONDS:g} s after the rollout:"
            f" {status} {body.decode(errors='replace')}"
        ) from None


async def assert_each_decided_once_in_order(
    probe: WireProbe, db: asyncpg.Connection, documents: int
) -> list[Record]:
    """Every document created and opened exactly once, its events in version order, every
    event published (at least once, by id) and none without its decision. Returns the events
    as first seen."""
    await eventually(
        lambda: len({r.body["event_id"] for r in probe.on(probe.topics.events)}) >= 2 * documents,
        timeout=240,
        what="every command answered",
    )

    async def drained() -> bool:
        return not await db.fetchval("SELECT count(*) FROM outbox")

    await eventually(drained, timeout=60, what="outbox drained")
    await asyncio.sleep(1.0)  # anything re-sent or decided twice would have come by now
    assert not probe.on(probe.topics.rejections)
    first: dict[str, Record] = {}
    for record in probe.on(probe.topics.events):
        first.setdefault(record.body["event_id"], record)
    versions: dict[str, list[int]] = defaultdict(list)
    for record in first.values():
        versions[record.body["purchase_order_id"]].append(record.body["version"])
    assert len(versions) == documents
    assert all(seen == [1, 2] for seen in versions.values()), "two events each, in order"
    history = await db.fetchval("SELECT count(*) FROM purchase_order_history")
    assert history == len(first) == 2 * documents
    assert await db.fetchval("SELECT count(*) FROM inbox") == 2 * documents
    return list(first.values())


def longest_pause(events: list[Record]) -> float:
    """The longest time between two outcomes arriving, while commands kept coming."""
    arrivals = sorted(record.arrived for record in events)
    return max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)


async def test_sigterm_at_2000_commands_per_second_stops_in_time_and_loses_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    documents = 10_000  # 20,000 commands: 10 s at 2,000/s
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    try:
        await made_ready(settings.health_port)
        sender = asyncio.create_task(
            offer(settings.kafka_bootstrap_servers, probe.topics.commands, stream(documents), 2000)
        )
        await asyncio.sleep(4.0)
        decided_before = await db.fetchval("SELECT count(*) FROM inbox")
        stopped_in = await asyncio.to_thread(service.terminate, GRACE_SECONDS)
        decided = await db.fetchval("SELECT count(*) FROM inbox")
        committed = await committed_offsets(
            settings.kafka_bootstrap_servers,
            f"{settings.consumer_group}.{PURCHASE_ORDERS}",
            probe.topics.commands,
        )
        sent = await sender
        service.start()
        await assert_each_decided_once_in_order(probe, db, documents)
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
    print(
        f"SIGTERM with 2,000 commands/s offered: exited in {stopped_in:.2f} s;"
        f" {decided} decided by then, {sent} sent in all"
    )
    assert 0 < decided_before <= decided < sent == 2 * documents
    # A clean stop commits the offset of everything it decided, and of nothing else: a
    # restart neither decides anything again nor skips anything.
    assert sum(committed.values()) == decided


async def test_a_rollout_under_load_loses_and_doubles_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Four instances on three partitions; then, while commands flow, three times a new one is
    started and made ready before the oldest is stopped (a rolling update with a surge), one
    is killed, and one more added."""
    logs = iter(range(100))

    def instance() -> tuple[ServiceProcess, int]:
        port = free_port()
        service = ServiceProcess(
            settings.model_copy(update={"health_port": port}), tmp_path / f"s{next(logs)}.log"
        )
        service.start()
        return service, port

    running: list[tuple[ServiceProcess, int]] = [instance() for _ in range(4)]
    stops: list[float] = []
    documents = 6_000
    try:
        for _, port in running:
            await made_ready(port)
        sender = asyncio.create_task(
            offer(settings.kafka_bootstrap_servers, probe.topics.commands, stream(documents), 300)
        )
        for _ in range(3):
            await asyncio.sleep(2.0)
            new, port = instance()
            running.append((new, port))
            await made_ready(port)
            oldest, _ = running.pop(0)
            stops.append(await asyncio.to_thread(oldest.terminate, GRACE_SECONDS))
        await asyncio.sleep(2.0)
        killed, _ = running.pop(0)
        killed.kill()
        added, port = instance()
        running.append((added, port))
        await made_ready(port)
        await sender
        for _, port in running:
            await ready_as_kubernetes_sees_it(port)
        events = await assert_each_decided_once_in_order(probe, db, documents)
    except BaseException:
        for service, _ in running:
            print(service.log())
        raise
    finally:
        for service, _ in running:
            service.stop()
    print(
        f"rollout at 300 commands/s: stops took {', '.join(f'{s:.2f}' for s in stops)} s;"
        f" longest pause in outcomes {longest_pause(events):.2f} s"
    )
