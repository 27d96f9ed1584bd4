"""Random command sequences that move stock, and the stock they imply: shared by the tests of
the movements and of the reference inventory consumer."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from typing import Any

import asyncpg

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


async def send_and_wait(
    probe: WireProbe,
    order_probe: WireProbe,
    commands: list[dict[str, Any]],
    order_commands: list[dict[str, Any]],
) -> None:
    """Send both sequences interleaved, then wait until every command is answered."""
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


async def stock_the_orders_imply(db: asyncpg.Connection) -> Counter[StockKey]:
    """From the stored purchase orders and customer orders, without zero entries."""
    rows = await db.fetch("SELECT tenant_id, document::text AS document FROM purchase_orders")
    order_rows = await db.fetch(
        "SELECT o.tenant_id, o.warehouse_id, o.status, i.sku, i.quantity"
        " FROM orders o JOIN order_items i USING (tenant_id, order_id)"
    )
    # Counter.update, not +: the sum must keep the negative on_hand of shipped orders.
    expected = implied_stock(rows)
    expected.update(implied_by_customer_orders(order_rows))
    return nonzero(expected)
