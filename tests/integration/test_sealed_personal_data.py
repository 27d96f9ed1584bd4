"""Commands that never read an order's personal data leave it sealed, on a real Postgres: no
key is unwrapped and nothing decrypted for them, what they store keeps every group as it was,
and a change to data that was loaded sealed is refused before anything is written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from itertools import count
from typing import Any

import asyncpg
import pytest

from service.adapters import crypto, personal_data
from service.adapters.crypto import MasterKey, new_key
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.orders.ports import order_repository
from service.app.ports import Changes, HistoryEntry, Outcome, Version
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.domain import orders
from service.errors import PersonalDataNotOpenedError
from tests.support import (
    address,
    create_order,
    order_command,
    order_status,
    redact_customer,
    update_order,
)

FAMILY = order_family("it.")
MASTER = MasterKey(new_key())
KEY = ("tenant-a", "O-1")
offsets = count()


def message(*bodies: dict[str, Any]) -> list[IncomingMessage]:
    """Keyed by the order, or by the customer for a customer.redact."""
    return [
        IncomingMessage(
            "it.orders",
            0,
            next(offsets),
            1,
            str(b.get("order_id") or b["customer_id"]).encode(),
            json.dumps(b).encode(),
        )
        for b in bodies
    ]


@pytest.fixture
def processor(pool: asyncpg.Pool) -> CommandProcessor[Any]:
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=Signer(new_key(), "it"),
    )


@pytest.fixture
def decrypted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every record opened from now on, by its field group."""
    opened: list[str] = []
    real: Callable[..., bytes] = crypto.open_sealed

    def counting(key: bytes, ciphertext: bytes, context: bytes) -> bytes:
        opened.append(context.decode(errors="replace"))
        return real(key, ciphertext, context)

    monkeypatch.setattr(personal_data, "open_sealed", counting)
    return opened


async def opened_order(pool: asyncpg.Pool) -> orders.Order:
    async with PostgresStore(pool, MASTER).unit_of_work() as uow:
        order = (await order_repository(uow).load_many([KEY]))[KEY]
    assert isinstance(order, orders.Order)
    return order


async def test_status_changes_and_redactions_decrypt_nothing_and_keep_every_group(
    processor: CommandProcessor[Any],
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    decrypted: list[str],
) -> None:
    shipping = address("Ship Canary", phone="+44 1 1111", email="ship@example.org")
    billing = address("Bill Canary", phone="+44 2 2222", email="bill@example.org")
    create = create_order("O-1", details={"shipping_address": shipping, "billing_address": billing})
    assert await processor.process_batch(message(create)) == [Outcome.ACCEPTED]

    decrypted.clear()
    assert await processor.process_batch(message(order_status("O-1", "ready"))) == [
        Outcome.ACCEPTED
    ]
    assert decrypted == [], "a status change opens no personal data"

    moved = address("Moved Canary", phone="+44 3 3333", email="moved@example.org")
    both = message(
        order_status("O-1", "fulfilled", expected_version=99),  # refused: a stale version
        update_order("O-1", {"shipping_address": moved}),
    )
    assert await processor.process_batch(both) == [Outcome.REJECTED, Outcome.ACCEPTED]
    assert decrypted, "an update in the run opens what it rewrites"

    decrypted.clear()
    redact = order_command("order.redact", "O-1", {"groups": ["shipping_address"]})
    assert await processor.process_batch(message(redact)) == [Outcome.ACCEPTED]
    assert await processor.process_batch(message(order_status("O-1", "cancelled"))) == [
        Outcome.ACCEPTED
    ]
    assert decrypted == [], "scheduling and carrying out an erasure read nothing"

    order = await opened_order(pool)
    assert order.redacted == frozenset({orders.DataGroup.SHIPPING_ADDRESS})
    assert order.details.shipping_address.name == personal_data.REDACTED
    assert order.details.billing_address.name == "Bill Canary", "kept through every change"
    assert order.details.billing_address.email == "bill@example.org"
    assert order.details.shipping_address.phone == "+44 3 3333", "contact is its own group"
    groups = await db.fetch("SELECT field_group, count(*) FROM personal_data GROUP BY 1 ORDER BY 1")
    assert [tuple(g) for g in groups] == [
        ("billing_address", 1),
        ("contact", 2),
        ("shipping_address", 2),
    ], "records only for what the update changed; the sealed loads added none"


async def test_a_change_to_data_loaded_sealed_is_refused_before_anything_is_written(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    assert await processor.process_batch(message(create_order("O-1"))) == [Outcome.ACCEPTED]
    records_before = await db.fetchval("SELECT count(*) FROM personal_data")
    forged = orders.Address("Someone Else", ("1 Other Street",), "Elsewhere", "E1", "GB")

    async def save_a_new_shipping_address_over_a_sealed_load() -> None:
        async with PostgresStore(pool, MASTER).unit_of_work() as uow:
            repository = order_repository(uow)
            sealed = (await repository.load_many([KEY], personal_data=False))[KEY]
            assert isinstance(sealed, orders.Order)
            assert sealed.details.shipping_address is orders.SEALED
            changed = replace(
                sealed,
                version=sealed.version + 1,
                details=replace(sealed.details, shipping_address=forged),
            )
            changes: Changes[orders.State] = Changes({KEY: sealed})
            entry = HistoryEntry(
                changed.version, uuid.uuid4(), uuid.uuid4(), "order.updated", b"{}"
            )
            changes.record(changed, [Version(changed, entry)])
            await repository.save_many(changes)

    with pytest.raises(PersonalDataNotOpenedError) as refused:
        await save_a_new_shipping_address_over_a_sealed_load()

    assert refused.value.order == KEY
    assert refused.value.role == "shipping_address"
    assert await db.fetchval("SELECT count(*) FROM personal_data") == records_before
    assert await db.fetchval("SELECT version FROM orders WHERE order_id = 'O-1'") == 1
    order = await opened_order(pool)
    assert order.details.shipping_address.name == "Ada Lovelace", "the stored data is untouched"


async def test_records_sealed_by_earlier_builds_open_unchanged(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # Records are sealed as orjson writes them (UTF-8); earlier builds wrote json.dumps's
    # ASCII with \u escapes. Both must open to the same values.
    shipping = address("Zoë Ünal-Łukasz 山田", city="Kraków")
    create = create_order("O-1", details={"shipping_address": shipping})
    assert await processor.process_batch(message(create)) == [Outcome.ACCEPTED]
    row = await db.fetchrow(
        "SELECT p.record_id, p.tenant_id, p.order_id, p.field_group, p.ciphertext, k.key_id,"
        " k.wrapped_key, k.master_key_id FROM personal_data p JOIN data_keys k USING (key_id)"
        " WHERE p.field_group = 'shipping_address'"
    )
    key = personal_data._unwrapped(MASTER, row)
    context = personal_data._context(
        row["tenant_id"], row["order_id"], orders.DataGroup(row["field_group"]), row["record_id"]
    )
    plaintext = crypto.open_sealed(key, row["ciphertext"], context)
    assert "Zoë Ünal-Łukasz 山田".encode() in plaintext, "written as UTF-8"
    as_before = json.dumps(json.loads(plaintext), separators=(",", ":")).encode()
    assert as_before.isascii()
    assert as_before != plaintext
    await db.execute(
        "UPDATE personal_data SET ciphertext = $1 WHERE record_id = $2",
        crypto.seal(key, as_before, context),
        row["record_id"],
    )

    order = await opened_order(pool)
    assert order.details.shipping_address.name == "Zoë Ünal-Łukasz 山田"
    assert order.details.shipping_address.city == "Kraków"

    # Builds before the strict edge (4cf21fa) accepted a lone surrogate, which only json writes
    # and reads; such an order opens, and is sealed again as it was.
    legacy = {**json.loads(plaintext), "name": "Zo\ud800"}
    await db.execute(
        "UPDATE personal_data SET ciphertext = $1 WHERE record_id = $2",
        crypto.seal(key, json.dumps(legacy, separators=(",", ":")).encode(), context),
        row["record_id"],
    )
    assert (await opened_order(pool)).details.shipping_address.name == "Zo\ud800"
    assert personal_data._value(personal_data._plaintext(legacy)) == legacy


async def test_erasing_a_customer_decrypts_nothing_and_leaves_nothing_readable(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, decrypted: list[str]
) -> None:
    assert await processor.process_batch(message(create_order("O-1"))) == [Outcome.ACCEPTED]
    assert await processor.process_batch(message(order_status("O-1", "cancelled"))) == [
        Outcome.ACCEPTED
    ]
    decrypted.clear()
    erase = redact_customer("CUST-1")
    assert await processor.process_batch(message(erase)) == [Outcome.ACCEPTED]
    assert decrypted == [], "an erasure destroys keys and reads nothing"

    order = await opened_order(pool)
    assert order.redacted == frozenset(orders.DataGroup)
    for role in (order.details.shipping_address, order.details.billing_address):
        assert (role.name, role.email) == (personal_data.REDACTED, personal_data.REDACTED)
