"""Customer orders against a real Postgres: racing vouchers, shared addresses, cascades."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import asyncpg
import pytest

from service.adapters.database import create_pool
from service.adapters.store import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.orders.handler import OrderHandler, order_family
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from tests.support import address, create_order, delete_order, order_status

FAMILY = order_family("it.")
offsets = count()


def message(body: dict[str, Any]) -> IncomingMessage:
    key = str(body["order_id"]).encode()
    return IncomingMessage("it.orders", 0, next(offsets), 1, key, json.dumps(body).encode())


@pytest.fixture
async def processor(database_url: str) -> AsyncIterator[CommandProcessor[Any]]:
    pool = await create_pool(database_url, 8)
    yield CommandProcessor(
        PostgresStore(pool), OrderHandler(FAMILY, "it.movements"), max_command_bytes=65536
    )
    await pool.close()


async def test_two_orders_racing_for_one_voucher_get_it_once(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    bodies = [create_order(f"O-{n}", details={"voucher_code": "RACE"}) for n in range(6)]
    outcomes = await asyncio.gather(*(processor.process(message(b)) for b in bodies))
    assert sorted(outcomes) == sorted([Outcome.ACCEPTED] + [Outcome.REJECTED] * 5)
    holder = await db.fetchval("SELECT order_id FROM order_vouchers WHERE voucher_code = 'RACE'")
    assert await db.fetchval("SELECT voucher_code FROM orders WHERE order_id = $1", holder)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_addresses_are_shared_rows_that_outlive_the_orders_using_them(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    billing = address("Grace Hopper", lines=["1 Compiler Road"])
    for order_id in ("O-A", "O-B"):
        body = create_order(order_id, details={"billing_address": billing})
        assert await processor.process(message(body)) is Outcome.ACCEPTED
    assert await db.fetchval("SELECT count(*) FROM addresses") == 2, "shipping and billing"

    assert await processor.process(message(delete_order("O-A"))) is Outcome.ACCEPTED
    assert await db.fetchval("SELECT count(*) FROM addresses") == 2
    assert await db.fetchval("SELECT count(*) FROM order_items WHERE order_id = 'O-A'") == 0
    assert await processor.process(message(order_status("O-B", "ready"))) is Outcome.ACCEPTED
    name = await db.fetchval(
        "SELECT a.name FROM orders o JOIN addresses a ON a.address_id = o.billing_address_id"
        " WHERE o.order_id = 'O-B'"
    )
    assert name == "Grace Hopper"


async def test_the_same_address_of_another_customer_is_another_row(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    for order_id, customer in (("O-1", "CUST-1"), ("O-2", "CUST-2")):
        body = create_order(order_id, details={"customer_id": customer})
        assert await processor.process(message(body)) is Outcome.ACCEPTED
    rows = await db.fetch("SELECT customer_id FROM addresses ORDER BY customer_id")
    assert [r["customer_id"] for r in rows] == ["CUST-1", "CUST-2"]
