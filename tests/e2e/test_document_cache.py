"""Each instance holds the purchase orders it committed, decoded, with the event that made each
one's version; over Kafka, two instances on one database take turns on one order, and each
decides on the version the other wrote, never on the one it holds.

The second instance reads other topics (its own TOPIC_PREFIX) so that the test, not the
group's assignment, says which instance decides each command. A receipt is refused on a draft
and accepted on an open order: an instance deciding on the version it held would refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from contracts.topics import INVENTORY_MOVEMENTS, PURCHASE_ORDERS, DocumentTopics
from service.devstack.processes import free_port
from service.devstack.provision import Endpoints
from service.settings import Settings
from tests.support import (
    ServiceProcess,
    WireProbe,
    change_status,
    create,
    details,
    http_get,
    receipt,
    running_service,
    until_ready,
)


async def test_instances_taking_turns_on_an_order_each_decide_on_the_others_version(
    settings: Settings,
    probe: WireProbe,
    stack: Endpoints,
    topic_prefix: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    other_prefix = f"{topic_prefix}other."
    other_settings = settings.model_copy(
        update={
            "topic_prefix": other_prefix,
            "consumer_group": f"{other_prefix}service",
            "health_port": free_port(),
        }
    )
    other = ServiceProcess(other_settings, tmp_path / "other.log")
    other_probe = WireProbe(
        stack.kafka_bootstrap_servers,
        DocumentTopics.for_family(PURCHASE_ORDERS, other_prefix),
        f"{other_prefix}{INVENTORY_MOVEMENTS}",
    )
    await other_probe.start()
    try:
        async with running_service(settings):
            [created] = await probe.events_of(create("PO-TURNS"))  # held here at version 1
            other.start()
            await until_ready(
                other_settings.health_port, timeout=120, what="the other instance ready"
            )
            [opened] = await other_probe.events_of(change_status("PO-TURNS", "open"))
            # Held at version 1 here, open at version 2 in Postgres: this instance must see 2
            # (the first receipt moves open to receiving, then records the goods).
            first = await probe.events_of(receipt("PO-TURNS", "R-1", **{"WIDGET-001": 40}), 2)
            # And the other, holding the version 2 it wrote, must see this one's version 4 (the
            # receipt that completes the line moves receiving to received).
            second = await other_probe.events_of(
                receipt("PO-TURNS", "R-2", **{"WIDGET-001": 60}), 2
            )
    finally:
        other.stop()
        await other_probe.stop()

    events = [created, opened, *first, *second]
    assert [(e["version"], e["type"]) for e in events] == [
        (1, "purchase_order.created"),
        (2, "purchase_order.status_changed"),
        (3, "purchase_order.status_changed"),
        (4, "purchase_order.receipt_recorded"),
        (5, "purchase_order.receipt_recorded"),
        (6, "purchase_order.status_changed"),
    ]
    assert [(e["data"]["from_status"], e["data"]["to_status"]) for e in (first[0], second[1])] == [
        ("open", "receiving"),
        ("receiving", "received"),
    ], "both receipts counted: the line is complete"
    history = await db.fetch(
        "SELECT version, event_id::text FROM document_history"
        " WHERE document_id = 'PO-TURNS' ORDER BY version"
    )
    assert [(row["version"], row["event_id"]) for row in history] == [
        (e["version"], e["event_id"]) for e in events
    ]


async def test_an_order_heavier_than_its_share_of_the_budget_is_decided_but_not_held(
    settings: Settings, probe: WireProbe, tmp_path: Path
) -> None:
    # 64 KiB: an order whose snapshot passes 1 KiB (a 64th) is not held, so no sender can
    # fill an instance's memory with a few large orders, yet every command on it is decided.
    small = settings.model_copy(update={"document_cache_mib": 1 / 16, "health_port": free_port()})
    lines = [{"sku": f"SKU-{n:03d}", "quantity": 1, "cost": "1.00"} for n in range(40)]
    heavy = create("PO-HEAVY") | {"payload": details(products=lines)}
    service = ServiceProcess(small, tmp_path / "service.log")
    service.start()
    try:
        await until_ready(small.health_port, timeout=120, what="the service ready")
        [light_created] = await probe.events_of(create("PO-LIGHT"))
        [heavy_created] = await probe.events_of(heavy)
        [heavy_opened] = await probe.events_of(change_status("PO-HEAVY", "open"))
        _, body = http_get(small.health_port, "/health")
    finally:
        service.stop()

    held = json.loads(body)["checks"]["documents_held"]
    compact = {"separators": (",", ":")}
    light = len(json.dumps(light_created["data"], **compact))  # type: ignore[arg-type]
    assert light < 1024 < len(json.dumps(heavy_created["data"], **compact))  # type: ignore[arg-type]
    assert held == {
        "documents": 1,
        "bytes": held["bytes"],
        "capacity_bytes": 65536,
        "heaviest_held_bytes": 1024,
    }
    assert 0 < held["bytes"] <= 1024, "only the light order is held"
    assert (heavy_opened["version"], heavy_opened["data"]["to_status"]) == (2, "open")
