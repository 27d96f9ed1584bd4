"""Replaying every published movement lands exactly on the stock the stored orders imply.

Purchase orders and customer orders move the same stock items, so one random sequence mixes both
families and the check covers every bucket: incoming, on_hand and reserved.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from typing import Any

import asyncpg

from service.settings import Settings
from tests.support import (
    WireProbe,
    change_status,
    command,
    create_order,
    delete,
    delete_order,
    details,
    invoice,
    order_status,
    receipt,
    running_service,
    update,
    update_order,
    update_shipping,
)

ORDERS = [f"PO-{n}" for n in range(16)]
CUSTOMER_ORDERS = [f"O-{n}" for n in range(12)]
ORDER_STATUSES = ["ready", "ready", "fulfilled", "sent", "delivered", "cancelled"]
SKUS = ["A", "B", "C"]
WAREHOUSES = ["W1", "W2"]
STATUSES = ["open", "open", "open", "receiving", "received", "closed", "cancelled"]
StockKey = tuple[str, str, str, str]  # tenant, warehouse, sku, bucket


def random_details(rng: random.Random) -> dict[str, Any]:
    skus = rng.sample(SKUS, rng.randint(1, len(SKUS)))
    lines = [{"sku": sku, "quantity": rng.randint(4, 15)} for sku in skus]
    return details(products=lines, warehouse_id=rng.choice(WAREHOUSES))


def random_command(rng: random.Random, serial: int) -> dict[str, Any]:
    order = rng.choice(ORDERS)
    tenant = rng.choice(["tenant-a", "tenant-a", "tenant-b"])
    kind = rng.choices(
        ["create", "status", "receipt", "invoice", "update", "shipping", "delete"],
        weights=[3, 5, 8, 1, 1, 1, 1],
    )[0]
    match kind:
        case "create":
            body = command("purchase_order.create", order, random_details(rng))
        case "status":
            body = change_status(order, rng.choice(STATUSES))
        case "receipt":
            lines = {sku: rng.randint(1, 4) for sku in rng.sample(SKUS, rng.randint(1, 2))}
            body = receipt(order, f"R-{serial}", **lines)
        case "invoice":
            body = invoice(order, f"INV-{serial}")
        case "update":
            body = update(order, **random_details(rng))
        case "shipping":
            body = update_shipping(order, tracking_number=f"T-{serial}")
        case _:
            body = delete(order)
    return {**body, "tenant_id": tenant}


def random_items(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"sku": sku, "quantity": rng.randint(1, 5), "unit_price": "2.00", "currency": "EUR"}
        for sku in rng.sample(SKUS, rng.randint(1, len(SKUS)))
    ]


def random_order_command(rng: random.Random) -> dict[str, Any]:
    order = rng.choice(CUSTOMER_ORDERS)
    tenant = rng.choice(["tenant-a", "tenant-a", "tenant-b"])
    kind = rng.choices(["create", "status", "update", "delete"], weights=[3, 8, 1, 1])[0]
    match kind:
        case "create":
            details = {"warehouse_id": rng.choice(WAREHOUSES), "items": random_items(rng)}
            body = create_order(order, details=details)
        case "status":
            body = order_status(order, rng.choice(ORDER_STATUSES))
        case "update":
            body = update_order(order, {"items": random_items(rng)})
        case _:
            body = delete_order(order)
    return {**body, "tenant_id": tenant}


def implied_stock(rows: list[asyncpg.Record]) -> Counter[StockKey]:
    """What inventory should hold, computed straight from the stored orders."""
    stock: Counter[StockKey] = Counter()
    for row in rows:
        document = json.loads(row["document"])
        received: Counter[str] = Counter()
        for r in document["receipts"]:
            received.update({line["sku"]: line["quantity"] for line in r["lines"]})
        for line in document["products"]:
            sku, warehouse = line["sku"], document["warehouse_id"]
            stock[(row["tenant_id"], warehouse, sku, "on_hand")] += received[sku]
            if document["status"] in ("open", "receiving", "received"):
                outstanding = line["quantity"] - received[sku]
                stock[(row["tenant_id"], warehouse, sku, "incoming")] += outstanding
    return nonzero(stock)


def implied_by_customer_orders(rows: list[asyncpg.Record]) -> Counter[StockKey]:
    stock: Counter[StockKey] = Counter()
    for row in rows:
        key = (row["tenant_id"], row["warehouse_id"], row["sku"])
        if row["status"] in ("ready", "fulfilled"):
            stock[(*key, "reserved")] += row["quantity"]
        if row["status"] in ("sent", "delivered"):
            stock[(*key, "on_hand")] -= row["quantity"]
    return nonzero(stock)


def nonzero(stock: Counter[StockKey]) -> Counter[StockKey]:
    """Without zero entries: a bucket that netted out equals one that never moved."""
    return Counter({key: quantity for key, quantity in stock.items() if quantity})


def replayed(movements: list[dict[str, Any]]) -> Counter[StockKey]:
    stock: Counter[StockKey] = Counter()
    for m in movements:
        stock[(m["tenant_id"], m["warehouse_id"], m["sku"], m["bucket"])] += m["quantity"]
    return nonzero(stock)


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
