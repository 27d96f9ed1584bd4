"""Several instances in one group: with more instances than partitions every one is ready, idle
or not, and every command is answered once, by whichever owns its partition; a command id sent
for two documents at once to instances that race for it is decided once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg

from service.adapters.kafka import KeyHashPartitioner
from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import ServiceProcess, WireProbe, create, http_get, until_ready

INSTANCES = 4  # on topics of TOPIC_PARTITIONS=3


async def health(port: int) -> dict[str, Any]:
    status, body = await asyncio.to_thread(http_get, port, "/health")
    assert status in (200, 503), status
    checks: dict[str, Any] = json.loads(body)
    return checks


async def test_four_instances_on_three_partitions_are_all_ready_and_answer_once(
    settings: Settings, probe: WireProbe, tmp_path: Path
) -> None:
    instances = [settings.model_copy(update={"health_port": free_port()}) for _ in range(INSTANCES)]
    services = [ServiceProcess(s, tmp_path / f"service-{n}.log") for n, s in enumerate(instances)]
    for service in services:
        service.start()
    ports = [s.health_port for s in instances]
    try:
        for port in ports:
            await until_ready(port, timeout=120, what=f"instance on {port} ready")
        owned = [
            (await health(port))["checks"]["consumer"]["partitions"].get("purchase-orders", [])
            for port in ports
        ]
        # Three partitions among four members: each owned once, one member idle and ready.
        assert sorted(p for partitions in owned for p in partitions) == sorted(
            f"{probe.topics.commands}/{n}" for n in range(3)
        )
        assert [] in owned

        bodies = [create(f"PO-S{n}") for n in range(30)]
        for body in bodies:
            await probe.send(body)
        await probe.wait_for(lambda records: len(probe.on(probe.topics.events)) >= 30)
        await asyncio.sleep(2)  # anything doubled would have come by now
        events = [r.body for r in probe.on(probe.topics.events)]
        assert sorted(e["command_id"] for e in events) == sorted(b["command_id"] for b in bodies)
    finally:
        for service in services:
            service.stop()


async def test_a_command_id_sent_for_two_documents_to_racing_instances_is_decided_once(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # Whoever may write to the commands topic can send one command_id under two documents, so
    # that two partitions, owned by two instances, claim it at once: one claim waits for the
    # other's transaction. Whichever commits first holds the id; the other copy is refused as
    # a reuse, and neither document gets a second event.
    instances = [settings.model_copy(update={"health_port": free_port()}) for _ in range(3)]
    services = [ServiceProcess(s, tmp_path / f"racing-{n}.log") for n, s in enumerate(instances)]
    for service in services:
        service.start()
    try:
        for instance in instances:
            await until_ready(instance.health_port, timeout=120, what="instance ready")
        pairs = []
        for n in range(20):
            first = create(f"PO-A{n}")
            pairs.append((first, create(f"PO-B{n}") | {"command_id": first["command_id"]}))
        partition = KeyHashPartitioner()
        apart = [
            pair
            for pair in pairs
            if len({partition(b["purchase_order_id"].encode(), [0, 1, 2], []) for b in pair}) == 2
        ]
        assert len(apart) >= 5, "some pairs must land on two partitions"
        await asyncio.gather(*(probe.send(body) for pair in pairs for body in pair))
        ids = [first["command_id"] for first, _ in pairs]
        await probe.wait_for(lambda _: all(len(probe.outcomes(i)) >= 2 for i in ids), 90)
        await asyncio.sleep(2)  # anything doubled would have come by now
        for first, second in pairs:
            outcomes = probe.outcomes(first["command_id"])
            assert sorted(o.topic for o in outcomes) == sorted(
                [probe.topics.events, probe.topics.rejections]
            ), first["command_id"]
            [refused] = [o for o in outcomes if o.topic == probe.topics.rejections]
            errors = [(e["error_code"], e["field"]) for e in refused.body["errors"]]
            assert errors == [("idempotency_key_reused", "command_id")]
            [created] = [o for o in outcomes if o.topic == probe.topics.events]
            assert created.body["purchase_order_id"] in (
                first["purchase_order_id"],
                second["purchase_order_id"],
            )
        stored = await db.fetchval(
            "SELECT count(*) FROM documents WHERE document_id ~ '^PO-[AB][0-9]+$'"
        )
        assert stored == len(pairs), "one document per command id"
    finally:
        for service in services:
            service.stop()
