"""Which order commands open personal data, and what an order loaded sealed may store: the pure
rules, and the in-memory store that mirrors Postgres (tests/integration/test_sealed_personal_data
checks the real one)."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import count

import pytest

from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.domain import orders
from tests.support import address, create_order, order_status, update_order

HOME = orders.Address("Ada", ("1 Street",), "London", "N1", "GB", "+44 1", "ada@example.org")
DETAILS = orders.OrderDetails("CUST-1", "WH-1", (), HOME, HOME)
SEALED = replace(DETAILS, shipping_address=orders.SEALED, billing_address=orders.SEALED)
offsets = count()


@pytest.mark.parametrize(
    ("command", "reads"),
    [
        (orders.ChangeOrderStatus(orders.Status.READY), False),
        (orders.DeleteOrder(), False),
        (orders.RedactOrder(), False),
        (orders.UpdateOrder(shipping_address=HOME), True),
        (orders.CreateOrder(DETAILS), True),
        (orders.RedactCustomer("CUST-1"), False),
    ],
)
def test_only_commands_that_touch_addresses_open_them(
    command: orders.CommandForOrders, reads: bool
) -> None:
    assert orders.reads_personal_data(command) is reads


def test_an_order_loaded_sealed_may_only_keep_both_addresses_sealed() -> None:
    assert orders.unopened_change(SEALED, SEALED) is None
    assert orders.unopened_change(DETAILS, DETAILS) is None
    assert orders.unopened_change(None, DETAILS) is None
    moved = replace(SEALED, shipping_address=HOME)
    assert orders.unopened_change(SEALED, moved) == "shipping_address"
    assert orders.unopened_change(SEALED, replace(SEALED, billing_address=HOME)) == (
        "billing_address"
    )
    assert orders.unopened_change(DETAILS, SEALED) == "shipping_address", "stand-in stored"
    assert orders.unopened_change(None, SEALED) == "shipping_address", "a new order opened"


async def test_the_memory_store_keeps_what_a_sealed_load_never_read() -> None:
    store = MemoryStore()
    processor = CommandProcessor(
        store,
        DocumentDecider(order_family("u."), "u.movements"),
        max_command_bytes=65536,
        signer=Signer(new_key(), "u"),
    )
    billing = address("Bill Canary", email="bill@example.org")
    bodies = [
        create_order("O-1", details={"billing_address": billing}),
        order_status("O-1", "ready"),
        update_order("O-1", {"shipping_address": address("Moved Canary")}),
        order_status("O-1", "cancelled"),
    ]
    for body in bodies:
        message = IncomingMessage("u.cmds", 0, next(offsets), 1, b"O-1", json.dumps(body).encode())
        assert await processor.process_batch([message]) == [Outcome.ACCEPTED], body["type"]
    order = store.data.documents["orders"][("tenant-a", "O-1")]
    assert order.status is orders.Status.CANCELLED
    assert order.details.shipping_address.name == "Moved Canary"
    assert order.details.billing_address.name == "Bill Canary"
    assert order.details.billing_address.email == "bill@example.org"
