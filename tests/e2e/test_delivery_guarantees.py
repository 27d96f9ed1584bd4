"""Offsets are committed per partition only after the decision commits; faults delay, never lose."""

from __future__ import annotations

import asyncio

import asyncpg

from service.app.purchase_orders.family import purchase_order_family
from service.devstack.provision import Endpoints
from service.settings import Settings
from tests.support import (
    WireProbe,
    change_status,
    committed_offsets,
    create,
    running_service,
)


async def test_offsets_are_committed_for_exactly_what_was_decided(
    stack: Endpoints, settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-1"))
        await probe.send_and_wait(change_status("PO-1", "open"))
        await asyncio.sleep(0.5)  # the commit follows the outcome's publication
    group = purchase_order_family().consumer_group(settings.consumer_group)
    offsets = await committed_offsets(stack.kafka_bootstrap_servers, group, probe.topics.commands)
    assert sum(offsets.values()) == 2, offsets


async def test_stopping_while_the_database_is_away_leaves_the_command_for_redelivery(
    settings: Settings,
    probe: WireProbe,
    database_url: str,
    stack_admin: asyncpg.Connection,
    db: asyncpg.Connection,
) -> None:
    database = database_url.rsplit("/", 1)[1]
    waiting = create("PO-2")
    async with running_service(settings):
        await probe.send_and_wait(create("PO-0"))  # the consumer has joined and works
        await db.close()
        await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        await stack_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        await probe.send(waiting)
        await asyncio.sleep(2)  # the handler is now retrying against the missing database
    assert probe.outcomes(waiting["command_id"]) == []
    await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")

    async with running_service(settings):
        outcome = await probe.outcome(waiting["command_id"])
    assert outcome.topic == probe.topics.events
    assert len(probe.outcomes(waiting["command_id"])) == 1


async def test_the_outbox_drains_by_itself_after_a_database_outage(
    settings: Settings, probe: WireProbe, database_url: str, stack_admin: asyncpg.Connection
) -> None:
    database = database_url.rsplit("/", 1)[1]
    async with running_service(settings):
        await probe.send_and_wait(create("PO-3"))
        await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        await stack_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        sent_during_outage = [change_status("PO-3", "open"), create("PO-4"), create("PO-5")]
        for body in sent_during_outage:
            await probe.send(body)
        await asyncio.sleep(1.5)
        await stack_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        for body in sent_during_outage:
            assert (await probe.outcome(body["command_id"])).topic == probe.topics.events
