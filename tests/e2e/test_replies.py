"""Replies over Kafka: a command re-sent from a fresh process is answered with the outcome it
was decided with, through a reply; a sender cannot point replies at the service's own topics or
at another tenant's replies."""

from __future__ import annotations

import json
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer

from contract_tools.conformance import STRICT, assert_conforms
from contracts.headers import CORRELATION_ID, REPLY_TO
from service.settings import Settings
from tests.support import (
    WireProbe,
    create_order,
    create_topics,
    details,
    eventually,
    order_service,
    running_service,
)


async def replies_on(settings: Settings, topic: str) -> list[tuple[dict[str, object], bytes]]:
    """Every reply on `topic`, checked against the contract, with its correlation_id."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
    finally:
        await consumer.stop()
    found = []
    for records in batches.values():
        for record in records:
            assert_conforms(record.value, "command.reply", mode=STRICT)
            found.append((json.loads(record.value), dict(record.headers)[CORRELATION_ID]))
    return found


async def test_a_command_resent_from_a_fresh_process_gets_its_original_outcome(
    settings: Settings, db: asyncpg.Connection
) -> None:
    accepted_id, refused_id = str(uuid.uuid4()), str(uuid.uuid4())
    tenant = ("--tenant", "tenant-a")
    create = ("send", "purchase_order.create", "PO-1", json.dumps(details()), *tenant)
    refuse = ("send", "purchase_order.delete", "PO-404", *tenant)
    async with running_service(settings):
        # Each `order-service send` is a process of its own, with a client that has seen
        # nothing: the second of each pair is a producer re-sending after a restart.
        first = await order_service(settings, *create, "--command-id", accepted_id)
        again = await order_service(settings, *create, "--command-id", accepted_id)
        refused = await order_service(settings, *refuse, "--command-id", refused_id)
        refused_again = await order_service(settings, *refuse, "--command-id", refused_id)

    assert (first.code, again.code) == (0, 0), first.stderr + again.stderr
    [created] = first.documents()
    assert again.documents() == [created]  # the same event, by id, type and version
    assert "decided before" in again.stderr
    assert (refused.code, refused_again.code) == (1, 1)
    [rejection] = refused.documents()
    [rejection_again] = refused_again.documents()
    assert (rejection["repeat"], rejection_again["repeat"]) == (False, True)
    assert rejection_again["errors"] == rejection["errors"]
    assert [e["error_code"] for e in rejection["errors"]] == ["not_found"]
    # Decided once: one version, one event.
    assert await db.fetchval("SELECT count(*) FROM purchase_order_history") == 1

    # One reply per copy sent (the relay publishes at least once: a copy may come twice).
    replies = await replies_on(settings, f"{settings.topic_prefix}replies.tenant-a")
    per_copy = {correlation: reply for reply, correlation in replies}
    assert len(per_copy) == 4
    by_command = {(r["command_id"], r["repeat"]): r for r in per_copy.values()}
    assert by_command[(accepted_id, False)]["events"] == by_command[(accepted_id, True)]["events"]


async def test_replies_cannot_be_pointed_at_the_services_topics_or_another_tenant(
    settings: Settings, order_probe: WireProbe
) -> None:
    prefix = settings.topic_prefix
    events = order_probe.topics.events
    forged = [
        (create_order("O-1"), events),
        (create_order("O-2"), f"{prefix}inventory.movements"),
        (create_order("O-3"), f"{prefix}replies.tenant-b"),
        (create_order("O-4"), f"{prefix}replies.tenant-a-but-not-really"),
        (create_order("O-5"), f"{prefix}replies.tenant-a_never-created"),
    ]
    mine = f"{prefix}replies.tenant-a_checkout"
    await create_topics(settings.kafka_connection(), [mine], 3)
    async with running_service(settings):
        for body, reply_to in forged:
            await order_probe.send_raw(
                body["order_id"].encode(),
                json.dumps(body).encode(),
                [(REPLY_TO, reply_to.encode()), (CORRELATION_ID, b"forged")],
            )
        for body, _ in forged:
            rejection = await order_probe.outcome(body["command_id"])
            assert rejection.topic == order_probe.topics.rejections
            [error] = rejection.body["errors"]
            assert (error["error_code"], error["field"]) == ("forbidden", "headers.reply_to")
        # The same commands with the sender's own reply topic are decided: the refusal
        # claimed nothing.
        for body, _ in forged:
            await order_probe.send_raw(
                body["order_id"].encode(),
                json.dumps(body).encode(),
                [(REPLY_TO, mine.encode()), (CORRELATION_ID, b"mine")],
            )
        await eventually(
            lambda: (
                len([r for r in order_probe.on(events) if r.body["type"] == "order.created"])
                == len(forged)
            )
        )
        answered = await replies_on(settings, mine)
    # At least once: a reply may come twice; one per copy sent.
    assert {str(r["document_id"]) for r, _ in answered} == {"O-1", "O-2", "O-3", "O-4", "O-5"}
    assert all(r["outcome"] == "accepted" for r, _ in answered)
    # Nothing but events reached the events topic, and nothing reached the other tenant.
    assert {r.body["type"] for r in order_probe.on(events)} == {"order.created"}
    assert await replies_on(settings, f"{prefix}replies.tenant-b") == []
