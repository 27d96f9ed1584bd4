"""Replaying every published movement lands exactly on the stock the stored orders imply.

Purchase orders and customer orders move the same stock items, so one random sequence mixes both
families and the check covers every bucket: incoming, on_hand and reserved.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import asyncpg

from service.settings import Settings
from tests.inventory_sequences import (
    implied_by_customer_orders,
    implied_stock,
    nonzero,
    random_command,
    random_order_command,
    replayed,
)
from tests.support import WireProbe, running_service


async def test_summing_every_movement_gives_the_stock_the_orders_imply(
    settings: Settings, probe: WireProbe, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    rng = random.Random(20261122)
    commands = [random_command(rng, serial) for serial in range(400)]
    order_commands = [random_order_command(rng) for _ in range(300)]
    async with running_service(settings):
        for body, order_body in itertools.zip_longest(commands, order_commands):
            if body is not None:
                await probe.send(body)
            if order_body is not None:
                await order_probe.send(order_body)
        await probe.wait_for(
            lambda _: all(probe.outcomes(c["command_id"]) for c in commands), timeout=180
        )
        await order_probe.wait_for(
            lambda _: all(order_probe.outcomes(c["command_id"]) for c in order_commands),
            timeout=180,
        )
        rows = await db.fetch("SELECT tenant_id, document::text AS document FROM purchase_orders")
        order_rows = await db.fetch(
            "SELECT o.tenant_id, o.warehouse_id, o.status, i.sku, i.quantity"
            " FROM orders o JOIN order_items i USING (tenant_id, order_id)"
        )
        # Counter.update, not +: the sum must keep the negative on_hand of shipped orders.
        expected = implied_stock(rows)
        expected.update(implied_by_customer_orders(order_rows))
        expected = nonzero(expected)
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
