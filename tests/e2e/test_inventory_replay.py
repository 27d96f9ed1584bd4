"""Replaying every published movement lands exactly on the stock the stored orders imply."""

from __future__ import annotations

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
    delete,
    details,
    invoice,
    receipt,
    running_service,
    update,
    update_shipping,
)

ORDERS = [f"PO-{n}" for n in range(16)]
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
    return +stock  # drop zeros: a consumer never sees a bucket nothing moved


def replayed(movements: list[dict[str, Any]]) -> Counter[StockKey]:
    stock: Counter[StockKey] = Counter()
    for m in movements:
        stock[(m["tenant_id"], m["warehouse_id"], m["sku"], m["bucket"])] += m["quantity"]
    return +stock


async def test_summing_every_movement_gives_the_stock_the_orders_imply(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    rng = random.Random(20261122)
    commands = [random_command(rng, serial) for serial in range(400)]
    async with running_service(settings):
        for body in commands:
            await probe.send(body)
        await probe.wait_for(
            lambda _: all(probe.outcomes(c["command_id"]) for c in commands), timeout=180
        )
        rows = await db.fetch("SELECT tenant_id, document::text AS document FROM purchase_orders")
        expected = implied_stock(rows)
        await probe.wait_for(lambda _: replayed(probe.movements()) == expected, timeout=60)

    accepted = Counter(
        c["type"]
        for c in commands
        if probe.outcomes(c["command_id"])[0].topic == probe.topics.events
    )
    # The sequence really exercised the rules that move stock, not only rejections.
    for kind in ("create", "change_status", "record_receipt", "delete"):
        assert accepted[f"purchase_order.{kind}"] >= 3, accepted
    assert any(bucket == "on_hand" for *_, bucket in expected)
    assert any(bucket == "incoming" for *_, bucket in expected)
    assert len({m["movement_id"] for m in probe.movements()}) == len(probe.movements())
