"""Hostile input to the paths made leaner for CPU, sent over Kafka to the real service by
whoever may write to the commands topics.

- Free text is the sender's: any storable character, DEL and JSON's escapes included. It comes
  back in the event exactly as sent (outputs are written without models), and the request hash
  the inbox keeps is the one json always wrote, so a resend is a duplicate and a changed
  command under the same id is refused, across the upgrade as within it.
- A command id spelt another way (braces, capitals, no hyphens) is the same command.
- Order commands that never read personal data leave it sealed: status changes around an
  address update, then a customer erasure, keep every group right and publish no address.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg

from contracts.purchase_orders import PURCHASE_ORDER_COMMAND
from contracts.topics import PURCHASE_ORDERS
from service.adapters.personal_data import REDACTED
from service.adapters.unit_of_work import PostgresStore
from service.app.orders.ports import order_repository
from service.app.received import command_key
from service.domain import orders
from service.settings import Settings
from tests.support import (
    Record,
    WireProbe,
    address,
    change_status,
    create,
    create_order,
    details,
    order_status,
    redact_customer,
    running_service,
    update_order,
)

NASTY = 'dock 7\x7f\x1f\t"quoted"\\ \u2028 é 漢 \U0001f4e6 </script>'


def hash_as_json_always_wrote(body: dict[str, Any]) -> bytes:
    canonical = PURCHASE_ORDER_COMMAND.validate_python(body).model_dump(
        mode="json", exclude={"issued_at"}
    )
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    ).digest()


async def test_sender_text_comes_back_as_sent_and_its_hash_is_the_one_inboxes_always_kept(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    body = create("PO-TEXT") | {"payload": details(note_to_supplier=NASTY, tracking_number=NASTY)}
    async with running_service(settings):
        [created] = await probe.events_of(body)
        assert created["data"]["note_to_supplier"] == NASTY
        assert created["data"]["tracking_number"] == NASTY

        stored = await db.fetchval(
            "SELECT request_hash FROM inbox WHERE message_key = $1",
            command_key(PURCHASE_ORDERS, body["tenant_id"], body["command_id"]),
        )
        assert stored == hash_as_json_always_wrote(body), "the hash json always wrote"

        # The same command again is a duplicate; the same id with other text is refused.
        await probe.send(body)
        changed = body | {"payload": details(note_to_supplier=NASTY.replace("\x7f", ""))}
        await probe.send(changed)
        rejections = probe.topics.rejections

        def refused() -> list[Record]:
            return [r for r in probe.on(rejections) if r.body["command_id"] == body["command_id"]]

        await probe.wait_for(lambda _: bool(refused()))
        [rejection] = refused()
        errors = [(e["error_code"], e["field"]) for e in rejection.body["errors"]]
        assert errors == [("idempotency_key_reused", "command_id")]
        await probe.events_of(change_status("PO-TEXT", "open"))
        versions = [
            r.body["version"]
            for r in probe.on(probe.topics.events)
            if r.body.get("purchase_order_id") == "PO-TEXT"
        ]
        assert versions == [1, 2], "the resend changed nothing"


async def test_a_command_id_spelt_another_way_is_the_same_command(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    # A valid command's identity is read from its contract, not from the text the sender wrote:
    # braces, capitals or no hyphens name the same command, its inbox key and its events.
    body = create("PO-SPELT")
    command_id = body["command_id"]
    braced = body | {"command_id": "{" + command_id.upper() + "}"}
    async with running_service(settings):
        await probe.send(braced)
        created = await probe.outcome(command_id)
        assert (created.topic, created.body["command_id"]) == (probe.topics.events, command_id)
        await probe.send(body)  # a resend, spelt as usual: a duplicate
        changed = body | {
            "command_id": command_id.replace("-", ""),
            "payload": details(supplier_id="SOMEONE-ELSE"),
        }
        await probe.send(changed)
        await probe.wait_for(lambda _: len(probe.outcomes(command_id)) >= 2)
        await probe.events_of(change_status("PO-SPELT", "open"))
        keys = await db.fetchval(
            "SELECT count(*) FROM inbox WHERE message_key = $1",
            command_key(PURCHASE_ORDERS, body["tenant_id"], command_id),
        )
    outcomes = probe.outcomes(command_id)
    assert [o.topic for o in outcomes] == [probe.topics.events, probe.topics.rejections]
    errors = [(e["error_code"], e["field"]) for e in outcomes[1].body["errors"]]
    assert errors == [("idempotency_key_reused", "command_id")]
    assert keys == 1
    versions = [
        r.body["version"]
        for r in probe.on(probe.topics.events)
        if r.body.get("purchase_order_id") == "PO-SPELT"
    ]
    assert versions == [1, 2], "the resend changed nothing"


CANARY = "Canary 5e1d"


async def test_sealed_commands_keep_every_group_and_publish_no_address(
    settings: Settings, order_probe: WireProbe, database_url: str
) -> None:
    shipping = address(f"{CANARY} Ship", phone="+44 1 1111", email="ship.5e1d@example.org")
    billing = address(f"{CANARY} Bill", phone="+44 2 2222", email="bill.5e1d@example.org")
    moved = address(f"{CANARY} Moved", city=f"{CANARY}ville")
    create_it = create_order(
        "O-SEAL", details={"shipping_address": shipping, "billing_address": billing}
    )
    async with running_service(settings):
        await order_probe.events_of(create_it)
        await order_probe.events_of(order_status("O-SEAL", "ready"))
        await order_probe.events_of(update_order("O-SEAL", {"shipping_address": moved}))

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            order = await _opened(pool, settings)
            assert order.details.shipping_address.name == f"{CANARY} Moved"
            assert order.details.billing_address.name == f"{CANARY} Bill"
            assert order.details.billing_address.email == "bill.5e1d@example.org"

            await order_probe.events_of(order_status("O-SEAL", "cancelled", "customer"))
            erase = redact_customer("CUST-1")
            await order_probe.send(erase, key="CUST-1")
            await order_probe.wait_for(
                lambda records: any(r.body.get("type") == "customer.redacted" for r in records)
            )
            order = await _opened(pool, settings)
            assert order.redacted == frozenset(orders.DataGroup)
            assert order.details.billing_address.name == REDACTED
        finally:
            await pool.close()
    published = json.dumps([r.body for r in order_probe.records])
    assert CANARY not in published
    assert "5e1d@example.org" not in published


async def _opened(pool: asyncpg.Pool, settings: Settings) -> orders.Order:
    key = ("tenant-a", "O-SEAL")
    async with PostgresStore(pool, settings.load_master_key()).unit_of_work() as uow:
        order = (await order_repository(uow).load_many([key]))[key]
    assert isinstance(order, orders.Order)
    return order


async def test_any_storable_personal_text_is_sealed_and_opened_exactly_as_sent(
    settings: Settings, order_probe: WireProbe, database_url: str
) -> None:
    # Personal data is sealed as orjson writes it (raw UTF-8, where json wrote \u escapes):
    # whatever storable text a sender puts in an address (DEL, controls, quotes, backslashes,
    # U+2028, astral characters) opens as sent, both the group an update rewrites and the one
    # it leaves sealed.
    billing = address(NASTY, lines=[NASTY, "2nd"], city=NASTY, email="nasty.7a3c@example.org")
    create_it = create_order("O-SEAL", details={"billing_address": billing})
    moved = address(NASTY[::-1], city="Ünterstadt")
    async with running_service(settings):
        await order_probe.events_of(create_it)
        await order_probe.events_of(update_order("O-SEAL", {"shipping_address": moved}))
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            order = await _opened(pool, settings)
        finally:
            await pool.close()
    assert order.details.billing_address.name == NASTY
    assert order.details.billing_address.lines == (NASTY, "2nd")
    assert order.details.billing_address.city == NASTY
    assert order.details.billing_address.email == "nasty.7a3c@example.org"
    assert order.details.shipping_address.name == NASTY[::-1]
    assert order.details.shipping_address.city == "Ünterstadt"
