"""More instances than partitions: every instance of the group is ready, idle or not, and every
command is answered once, by whichever owns its partition."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

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
