"""Replaying every published movement lands exactly on the stock the stored orders imply.

Purchase orders and customer orders move the same stock items, so one random sequence mixes both
families and the check covers every bucket: incoming, on_hand and reserved.
"""

from __future__ import annotations

import random
from collections import Counter

import asyncpg

from service.settings import Settings
from tests.inventory_sequences import (
    random_command,
    random_order_command,
    replayed,
    send_and_wait,
    stock_the_orders_imply,
)
from tests.support import WireProbe, running_service


async def test_summing_every_movement_gives_the_stock_the_orders_imply(
    settings: Settings, probe: WireProbe, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    rng = random.Random(20261122)
    commands = [random_command(rng, serial) for serial in range(400)]
    order_commands = [random_order_command(rng) for _ in range(300)]
    async with running_service(settings):
        await send_and_wait(probe, order_probe, commands, order_commands)
        expected = await stock_the_orders_imply(db)
        await probe.wait_for(lambda _: replayed(probe.movements()) == expected, timeout=60)

    accepted = Counter(
        c["type"]
        for c in commands
        if probe.outcomes(c["command_id"])[0].topic == probe.topics.events
    )
    # The sequence really exercised the rules that move stock, not only rejections.
    for kind in ("create", "change_status", "record_receipt", "delete"):
        assert accepted[f"purchase_order.{kind}"] >= 3, accepted
    order_accepted = Counter(
        c["payload"].get("status", c["type"])
        for c in order_commands
        if order_probe.outcomes(c["command_id"])[0].topic == order_probe.topics.events
    )
    for kind in ("order.create", "ready", "sent", "cancelled", "order.delete"):
        assert order_accepted[kind] >= 2, order_accepted
    assert {bucket for *_, bucket in expected} == {"incoming", "on_hand", "reserved"}
    assert len({m["movement_id"] for m in probe.movements()}) == len(probe.movements())
