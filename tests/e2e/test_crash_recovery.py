"""Kill the service with SIGKILL in the middle of a stream of commands, restart it, and check
that every command has exactly one outcome and every event was published exactly once by id."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import ServiceProcess, WireProbe, change_status, command, create, eventually

pytestmark = pytest.mark.slow

DOCUMENTS = 150


def command_stream() -> tuple[list[dict[str, object]], dict[str, str]]:
    """Commands and the outcome each must get: 'event' or 'rejection'."""
    rng = random.Random(20261122)
    per_document = []
    expected: dict[str, str] = {}
    for i in range(DOCUMENTS):
        po = f"PO-{i}"
        steps = [
            (create(po), "event"),
            (change_status(po, "open"), "event"),
            (change_status(po, "received"), "rejection"),  # open -> received is not allowed
            (change_status(po, rng.choice(["receiving", "cancelled"])), "event"),
            (command("purchase_order.create", po, {"supplier_id": 1}), "rejection"),
        ]
        per_document.append(steps)
        expected.update({str(c["command_id"]): outcome for c, outcome in steps})
    # Interleave documents while keeping each document's commands in order.
    stream: list[dict[str, object]] = []
    cursors = [0] * DOCUMENTS
    while any(c < 5 for c in cursors):
        i = rng.choice([d for d in range(DOCUMENTS) if cursors[d] < 5])
        stream.append(per_document[i][cursors[i]][0])
        cursors[i] += 1
    return stream, expected


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    stream, expected = command_stream()
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    try:
        # Sent while the service works, so the kill lands with batches in flight.
        sender = asyncio.create_task(send_all(probe, stream))
        await probe.wait_for(lambda records: len(records) >= len(stream) // 10, timeout=90)
        service.kill()
        outcomes_at_kill = sum(1 for command_id in expected if probe.outcomes(command_id))
        service.start()
        await sender

        def every_command_answered(_: object) -> bool:
            return all(probe.outcomes(command_id) for command_id in expected)

        await probe.wait_for(every_command_answered, timeout=120)
        await _wait_for_drained_outbox(db)
        health = await asyncio.to_thread(
            _get_json, f"http://127.0.0.1:{settings.health_port}/health"
        )
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()

    assert outcomes_at_kill < len(expected), "the kill must land in the middle of the stream"
    assert health["status"] == "ok"
    assert health["checks"]["outbox_unpublished"] == 0
    assert health["checks"]["relay"]["leader"] is True

    duplicates = await assert_exactly_one_outcome_each(probe, db, expected)
    print(f"answered before the kill: {outcomes_at_kill}; redelivered duplicates: {duplicates}")


async def test_rebalances_mid_stream_lose_nothing_and_duplicate_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A second instance joins while batches are in flight, then the first leaves: partitions
    move twice, and every command still has exactly one outcome, in version order."""
    stream, expected = command_stream()
    first = ServiceProcess(settings, tmp_path / "first.log")
    second = ServiceProcess(
        settings.model_copy(update={"health_port": free_port()}), tmp_path / "second.log"
    )
    first.start()
    try:
        sender = asyncio.create_task(send_all(probe, stream))
        await probe.wait_for(lambda records: len(records) >= len(stream) // 10, timeout=90)
        second.start()
        await probe.wait_for(lambda records: len(records) >= len(stream) // 3, timeout=90)
        first.stop()
        await sender
        await probe.wait_for(
            lambda _: all(probe.outcomes(command_id) for command_id in expected), timeout=120
        )
        await _wait_for_drained_outbox(db)
    except BaseException:
        print(first.log(), second.log())
        raise
    finally:
        first.stop()
        second.stop()
    await assert_exactly_one_outcome_each(probe, db, expected)


async def test_sigkill_with_a_save_in_postgres_and_its_messages_built_loses_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A batch's messages are built while Postgres executes its save (service/app/overlap.py).
    Killed in that window, the service has committed nothing and published nothing of the
    batch: after a restart every command has exactly one outcome, and every event its
    committed version."""
    await db.execute(
        """
        CREATE FUNCTION slow_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.document_id = 'PO-SLOW' THEN PERFORM pg_sleep(3); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER slow_history BEFORE INSERT ON document_history
            FOR EACH ROW EXECUTE FUNCTION slow_history();
        """
    )
    documents = [f"PO-{i}" for i in range(20)] + ["PO-SLOW"]
    stream = [create(po) for po in documents] + [change_status(po, "open") for po in documents]
    expected = {str(body["command_id"]): "event" for body in stream}
    slow_create = str(stream[len(documents) - 1]["command_id"])
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    try:
        for body in stream:
            await probe.send(body)

        async def saving() -> bool:
            sleeping: int = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                " AND query LIKE '%INSERT INTO document_history%'"
            )
            return sleeping > 0

        await eventually(saving, timeout=60, what="a save executing in Postgres")
        service.kill()
        assert probe.outcomes(slow_create) == [], "the batch must not have committed"
        await db.execute("DROP TRIGGER slow_history ON document_history")
        service.start()
        await probe.wait_for(
            lambda _: all(probe.outcomes(command_id) for command_id in expected), timeout=120
        )
        await _wait_for_drained_outbox(db)
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
    await assert_exactly_one_outcome_each(probe, db, expected)


async def send_all(probe: WireProbe, stream: list[dict[str, object]]) -> None:
    """At about 250 commands/s, as a busy sender: the service keeps up, so a kill after the
    first tenth lands in the middle of the stream."""
    for body in stream:
        await probe.send(body)
        await asyncio.sleep(0.004)


async def assert_exactly_one_outcome_each(
    probe: WireProbe, db: asyncpg.Connection, expected: dict[str, str]
) -> int:
    """I1, I2 and I3 over everything the probe saw; returns how many events were re-sent."""
    events = probe.on(probe.topics.events)
    rejections = probe.on(probe.topics.rejections)
    by_event_id = {r.body["event_id"]: r.body for r in events}

    # I1: every command has exactly one outcome, of the kind its rule demands.
    for command_id, kind in expected.items():
        event_ids = {r.body["event_id"] for r in events if r.body["command_id"] == command_id}
        rejected = any(r.body["command_id"] == command_id for r in rejections)
        outcome = ("event" if event_ids else "") + ("rejection" if rejected else "")
        assert outcome == kind, f"command {command_id}: expected {kind}, got {outcome or 'none'}"
        assert len(event_ids) <= 1

    # I2: every committed event was published, and no event exists without a committed change.
    history = await db.fetch(
        "SELECT event_id::text, purchase_order_id, version FROM purchase_order_history"
    )
    assert set(by_event_id) == {h["event_id"] for h in history}

    # One event per document version, and per document the versions arrive in order.
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen_ids: set[str] = set()
    for record in events:
        body = record.body
        if body["event_id"] not in seen_ids:
            seen_ids.add(body["event_id"])
            first_seen[body["purchase_order_id"]].append(body["version"])
    for document, versions in first_seen.items():
        assert versions == list(range(1, len(versions) + 1)), f"{document}: {versions}"

    rows = await db.fetch("SELECT outcome, count(*) FROM inbox GROUP BY outcome")
    assert sum(r["count"] for r in rows) == len(expected)
    return len(events) - len(by_event_id)


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
        return body


async def _wait_for_drained_outbox(db: asyncpg.Connection) -> None:
    async def drained() -> bool:
        return not await db.fetchval("SELECT count(*) FROM outbox")

    await eventually(drained, what="outbox drained")
    # A last moment for anything the relay re-sent to reach the probe.
    await asyncio.sleep(1.0)
