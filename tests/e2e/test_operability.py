"""What the people on call see: /metrics counts exactly what happened, and /health/ready turns
red while a batch is stuck and green again once it moves, on the real service process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import service.entrypoints.app as app_module
from service.app.incoming import IncomingMessage
from service.app.processor import CommandProcessor
from service.settings import Settings
from tests.support import (
    ServiceProcess,
    WireProbe,
    change_status,
    create,
    create_order,
    eventually,
    http_get,
    running_service,
    until_ready,
)

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Series:
    status, body = await asyncio.to_thread(http_get, port, "/metrics")
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


async def readiness(port: int) -> tuple[int, dict[str, Any]]:
    status, body = await asyncio.to_thread(http_get, port, "/health/ready")
    return status, json.loads(body) if body else {}


async def test_metrics_count_a_known_mix_of_commands_exactly(
    settings: Settings, probe: WireProbe, order_probe: WireProbe, tmp_path: Path
) -> None:
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    port = settings.health_port
    try:
        await until_ready(port, timeout=60, what="ready")
        before = await scrape(port)

        po_create = create("PO-M1")
        accepted = [po_create, create("PO-M2")]
        for body in accepted:
            await probe.send_and_wait(body)
        await probe.send_and_wait(change_status("PO-M1", "received"))  # rejected
        invalid = create("PO-M3")
        del invalid["payload"]["warehouse_id"]
        await probe.send_and_wait(invalid)  # rejected at the edge, dead-lettered
        await probe.send(b"\xff not json", key="PO-M4")  # unreadable: a dead letter only
        await probe.send(po_create)  # a faithful re-send: a duplicate, no new outcome
        await order_probe.send_and_wait(create_order("O-M1"))

        po, orders = "purchase-orders", "orders"
        expected = {
            (po, "purchase_order.create", "accepted"): 2,
            (po, "purchase_order.change_status", "rejected"): 1,
            (po, "purchase_order.create", "dead_lettered"): 1,
            (po, "unknown", "dead_lettered"): 1,
            (po, "purchase_order.create", "duplicate"): 1,
            (orders, "order.create", "accepted"): 1,
        }

        def delta(after: Series, name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        async def all_counted() -> bool:
            after = await scrape(port)
            total = sum(
                delta(after, "order_service_commands_total", family=f, type=t, outcome=o)
                for f, t, o in expected
            )
            return total == sum(expected.values())

        await eventually(all_counted, timeout=30, what="every command counted")
        after = await scrape(port)
        for (family, command_type, outcome), count in expected.items():
            labels = {"family": family, "type": command_type, "outcome": outcome}
            assert delta(after, "order_service_commands_total", **labels) == count, labels
        counted = sum(
            delta(after, name, **dict(labels))
            for (name, labels) in after
            if name == "order_service_commands_total"
        )
        assert counted == sum(expected.values())  # nothing else was counted anywhere
        assert delta(after, "order_service_dead_letters_total", family=po, reason="invalid") == 1
        assert delta(after, "order_service_dead_letters_total", family=po, reason="unreadable") == 1
        assert delta(after, "order_service_command_age_seconds_count", family=po) == 6
        assert delta(after, "order_service_batch_size_messages_sum", family=po) == 6
        assert 1 <= delta(after, "order_service_batch_size_messages_count", family=po) <= 6
        for partition in range(settings.topic_partitions):
            lag = value(
                after,
                "order_service_consumer_lag_messages",
                topic=f"{settings.topic_prefix}purchase-orders.commands",
                partition=str(partition),
            )
            assert lag == 0
        assert value(after, "order_service_relay_up") == 1

        # Outcomes: 2 created + 1 rejected + 1 invalid_request (+ its dead letter) + 1 dead
        # letter, and the order's event: at least that many published since the first scrape,
        # from memory or, for what could not be, by the relay.
        async def publications_counted() -> bool:
            scraped = await scrape(port)
            published = delta(
                scraped, "order_service_published_from_memory_messages_total"
            ) + delta(scraped, "order_service_relay_published_messages_total")
            return published >= 7

        await eventually(publications_counted, timeout=20, what="the publications counted")
        await eventually(
            lambda: _outbox_empty(port), timeout=20, what="the outbox gauge drops to zero"
        )
    finally:
        service.stop()


async def test_the_collector_is_settled_before_the_first_batch_of_a_backlog(
    settings: Settings, probe: WireProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance that starts with commands waiting (a restart, a deployment) decides none of
    them before its collector is settled: under CPython's defaults the first batches took two
    full collections of 70 to 90 ms each. Here the real service runs in this process against the
    real servers; settling is recorded, not done, so this process keeps its own collector."""
    events: list[str] = []
    monkeypatch.setattr(app_module, "settle_after_start", lambda: events.append("settled"))
    decide = CommandProcessor.process_batch

    async def recorded(self: CommandProcessor[Any], batch: Sequence[IncomingMessage]) -> None:
        events.append("batch")
        await decide(self, batch)

    monkeypatch.setattr(CommandProcessor, "process_batch", recorded)
    bodies = [create(f"PO-GC{i}") for i in range(200)]
    await asyncio.gather(*(probe.send(body) for body in bodies))  # waiting before the start
    created = {body["command_id"] for body in bodies}

    def all_answered(records: list[Any]) -> bool:
        return created <= {r.body["command_id"] for r in records if r.topic == probe.topics.events}

    async with running_service(settings):
        await probe.wait_for(all_answered, timeout=60)
    assert events[0] == "settled", events
    assert events.count("settled") == 1, events
    assert "batch" in events


def _outbox_empty(port: int) -> bool:
    status, body = http_get(port, "/metrics")
    return status == 200 and "order_service_outbox_pending_messages 0.0" in body.decode()


async def test_readiness_turns_red_while_a_batch_is_stuck_and_green_when_it_moves(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"ready_max_batch_seconds": 1.0})
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    port = settings.health_port
    try:
        status, _ = await readiness(port)
        assert status in (0, 503)  # not ready before the group has joined
        await until_ready(port, timeout=60, what="ready")
        assert (await readiness(port))[1] == {"status": "ready", "reasons": []}

        # Hold the lock stripe of PO-S1's document, as a long transaction elsewhere would.
        await db.execute(
            "SELECT pg_advisory_lock(1, hashtext('tenant-a' || chr(31) || 'PO-S1') & 1023)"
        )
        stuck = create("PO-S1")
        await probe.send(stuck)
        await eventually(
            lambda: http_get(port, "/health/ready")[0] == 503, timeout=20, what="readiness red"
        )
        _, report = await readiness(port)
        assert report["status"] == "not_ready"
        assert any("has been deciding for" in reason for reason in report["reasons"]), report
        status, _ = await asyncio.to_thread(http_get, port, "/health/live")
        assert status == 200  # stuck on a lock is not a reason to restart the process

        await db.execute("SELECT pg_advisory_unlock_all()")
        await until_ready(port, timeout=20, what="ready again")
        created = await probe.outcome(stuck["command_id"])
        assert created.body["type"] == "purchase_order.created"
    finally:
        service.stop()


async def test_json_logs_are_one_object_per_line_and_name_the_message(
    settings: Settings, order_probe: WireProbe, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"log_format": "json"})
    log_path = tmp_path / "service.log"
    service = ServiceProcess(settings, log_path, log_level="INFO")
    service.start()
    try:
        await until_ready(settings.health_port, timeout=60, what="ready")
        refused = create_order("O-J1", tenant_id="tenant-j")
        refused["payload"]["shipping_address"]["email"] = "ada at example dot org"
        await order_probe.send_raw(
            b"O-J1",
            json.dumps(refused).encode(),
            [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
        )
        await order_probe.outcome(refused["command_id"])
        await eventually(lambda: "refused" in log_path.read_text(), timeout=10, what="logged")
    finally:
        service.stop()
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"level", "logger", "message", "timestamp"} <= line.keys() for line in lines)
    assert any(line["logger"] == "service.faststream" for line in lines)
    [line] = [line for line in lines if line["message"].startswith("refused")]
    assert line["level"] == "WARNING"
    assert line["command_id"] == refused["command_id"]
    assert line["tenant_id"] == "tenant-j"
    assert line["topic"] == f"{settings.topic_prefix}orders.commands"
    assert isinstance(line["partition"], int)
    assert isinstance(line["offset"], int)
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    # No personal data: neither the address nor the refused value.
    assert "lovelace" not in text.lower()
    assert "example dot org" not in text
