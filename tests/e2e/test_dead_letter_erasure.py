"""Dead letters go with the people and orders they are about: an invalid order.update (which
names no customer) and an invalid order.create are unreadable after customer.redact and after
order.redact; an order command sent to the purchase orders' topic leaves no plaintext on any
topic the service writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from contracts.headers import DEAD_LETTER_KEY
from service.settings import Settings
from tests.e2e.test_erasure import (
    canaries,
    canary_address,
    found_in,
    read_from_the_beginning,
    written_by_the_service,
)
from tests.support import (
    Run,
    WireProbe,
    create_order,
    order_command,
    order_service,
    redact_customer,
    running_service,
    update_order,
)


def too_many_lines(c: dict[str, str]) -> dict[str, Any]:
    """An address the contract refuses (five lines): its command is dead-lettered, sealed."""
    return {**canary_address(c), "lines": [c["line"]] * 5}


async def erase_customer(probe: WireProbe, customer_id: str) -> dict[str, Any]:
    """customer.redact (keyed by the customer) and its receipt."""
    body = redact_customer(customer_id)
    await probe.send(body, key=customer_id)

    def receipt() -> list[dict[str, Any]]:
        return [
            r.body
            for r in probe.outcomes(body["command_id"])
            if r.body.get("type") == "customer.redacted"
        ]

    await probe.wait_for(lambda _: bool(receipt()))
    return receipt()[0]


async def listed(settings: Settings, family: str, holding: str) -> Run:
    """`dead-letters list --show`, once it shows `holding` (a broker may report a partition's
    end a moment after a consumer has read the record)."""
    for _ in range(30):
        shown = await order_service(settings, "dead-letters", "list", "--family", family, "--show")
        if holding in shown.stdout:
            return shown
        await asyncio.sleep(1)
    raise AssertionError(f"never showed it: {shown.stderr}")


async def letters_shown(settings: Settings) -> str:
    shown = await order_service(settings, "dead-letters", "list", "--family", "orders", "--show")
    assert shown.code == 0, shown.stderr
    return shown.stdout


async def test_letters_are_erased_with_their_customer_and_with_their_order(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    of_customer, of_order = canaries(), canaries()
    async with running_service(settings):
        for order_id, customer in (("O-1", "CUST-1"), ("O-2", "CUST-2")):
            created = await order_probe.send_and_wait(
                create_order(order_id, details={"customer_id": customer})
            )
            assert created.body["type"] == "order.created"
        # CUST-1: an update of O-1 (no customer named in it) and a create naming CUST-1.
        bad_update = update_order("O-1", {"shipping_address": too_many_lines(of_customer)})
        bad_create = create_order(
            "O-3", details={"customer_id": "CUST-1", "billing_address": too_many_lines(of_customer)}
        )
        # O-2: an update, and a create that reuses its id.
        bad_update_2 = update_order("O-2", {"billing_address": too_many_lines(of_order)})
        bad_create_2 = create_order(
            "O-2", details={"customer_id": "CUST-2", "shipping_address": too_many_lines(of_order)}
        )
        for body in (bad_update, bad_create, bad_update_2, bad_create_2):
            rejected = await order_probe.send_and_wait(body)
            assert rejected.body["errors"][0]["error_code"] == "invalid_request"
        await order_probe.wait_for(
            lambda _: len(order_probe.on(order_probe.topics.dead_letters)) == 4
        )
        before = await letters_shown(settings)
        assert found_in(before.encode(), [of_customer["name"], of_order["name"]]) == [
            of_customer["name"],
            of_order["name"],
        ]

        receipt = await erase_customer(order_probe, "CUST-1")
        assert receipt["data"]["keys_destroyed"] >= 2
        redacted = await order_probe.send_and_wait(order_command("order.redact", "O-2", {}))
        assert redacted.body["type"] in ("order.redacted", "order.redaction_scheduled")
        if redacted.body["type"] == "order.redaction_scheduled":
            # O-2 is still being fulfilled: cancelling it runs the erasure.
            cancel = order_command("order.change_status", "O-2", {"status": "cancelled"})
            await order_probe.send_and_wait(cancel)

        after = await letters_shown(settings)
    assert found_in(after.encode(), [*of_customer.values(), *of_order.values()]) == []
    assert after.count("gone: its key was destroyed") == 4
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0


async def test_an_order_command_on_the_purchase_orders_topic_leaves_no_plaintext(
    settings: Settings, probe: WireProbe, order_probe: WireProbe
) -> None:
    c = canaries()
    misrouted = create_order(
        "O-9",
        details={"shipping_address": canary_address(c), "billing_address": canary_address(c)},
    )
    async with running_service(settings):
        await probe.send_raw(b"O-9", json.dumps(misrouted).encode())
        # Not even a body that cannot be read is kept in the clear there.
        await probe.send_raw(b"PO-1", b"{" + c["city"].encode())
        await probe.wait_for(lambda _: len(probe.on(probe.topics.dead_letters)) == 2)
        shown = await listed(settings, "purchase-orders", c["name"])
        # The letter named its customer: erasing them destroys it.
        await erase_customer(order_probe, "CUST-1")
        gone = await order_service(
            settings, "dead-letters", "list", "--family", "purchase-orders", "--show"
        )
    written = await read_from_the_beginning(settings, written_by_the_service(settings))
    assert found_in(written, list(c.values())) == []
    assert shown.code == 0, shown.stderr  # sealed, yet an operator can still open it
    assert all(DEAD_LETTER_KEY in r.headers for r in probe.on(probe.topics.dead_letters))
    assert c["name"] not in gone.stdout
    assert "gone: its key was destroyed" in gone.stdout
