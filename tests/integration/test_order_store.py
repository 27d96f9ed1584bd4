"""Customer orders against a real Postgres: racing vouchers, encrypted personal data, cascades."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from itertools import count
from typing import Any

import asyncpg
import pytest

from service.adapters.crypto import DecryptionError, MasterKey, MasterKeyring, new_key
from service.adapters.headers import decode_headers
from service.adapters.personal_data import WRAPPED_KEY_TABLES, open_dead_letter, rewrap_chunk
from service.adapters.relay import delete_expired
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.orders.ports import order_repository
from service.app.ports import Outcome, UnitOfWork
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.domain import orders
from tests.support import (
    address,
    create_order,
    delete_order,
    order_command,
    order_status,
    redact_customer,
    update_order,
)

FAMILY = order_family("it.")
MASTER = MasterKey(new_key())
SIGNER = Signer(new_key(), "it")
offsets = count()


async def load_order(uow: UnitOfWork, order_id: str) -> orders.State | None:
    return (await order_repository(uow).load_many([("tenant-a", order_id)])).get(
        ("tenant-a", order_id)
    )


def message(body: dict[str, Any]) -> IncomingMessage:
    key = str(body["order_id"]).encode()
    return IncomingMessage("it.orders", 0, next(offsets), 1, key, json.dumps(body).encode())


@pytest.fixture
def processor(pool: asyncpg.Pool) -> CommandProcessor[Any]:
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
    )


async def test_two_orders_racing_for_one_voucher_get_it_once(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    bodies = [create_order(f"O-{n}", details={"voucher_code": "RACE"}) for n in range(6)]
    outcomes = await asyncio.gather(*(processor.process(message(b)) for b in bodies))
    assert sorted(outcomes) == sorted([Outcome.ACCEPTED] + [Outcome.REJECTED] * 5)
    holder = await db.fetchval("SELECT order_id FROM order_vouchers WHERE voucher_code = 'RACE'")
    assert await db.fetchval("SELECT voucher_code FROM orders WHERE order_id = $1", holder)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


CANARIES = {
    "name": "Canary Name 7f3a",
    "line": "Canary Line 7f3a",
    "city": "Canaryville7f3a",
    "postal_code": "CAN-7F3A",
    "phone": "+49 7733 7733",
    "email": "canary.7f3a@example.org",
}


def canary_address(suffix: str = "") -> dict[str, Any]:
    return address(
        CANARIES["name"] + suffix,
        lines=[CANARIES["line"] + suffix],
        city=CANARIES["city"] + suffix,
        postal_code=CANARIES["postal_code"],
        phone=CANARIES["phone"],
        email=CANARIES["email"],
    )


async def every_row_as_text(db: asyncpg.Connection) -> str:
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    dumps = [
        await db.fetchval(f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {t[0]} t")
        for t in tables
    ]
    return "\n".join(dumps)


async def test_an_order_keeps_its_voucher_through_every_change_until_cancelled(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    body = create_order("O-1", details={"voucher_code": "KEEP"})
    assert await processor.process(message(body)) is Outcome.ACCEPTED
    changes = [
        update_order("O-1", {"shipping_address": address("Someone Else")}),
        order_status("O-1", "ready"),
        order_status("O-1", "cancelled"),
    ]
    holders = []
    for change in changes:
        assert await processor.process(message(change)) is Outcome.ACCEPTED
        holders.append(
            await db.fetchval("SELECT order_id FROM order_vouchers WHERE voucher_code = 'KEEP'")
        )
    assert holders == ["O-1", "O-1", None]


async def test_personal_data_is_never_stored_in_the_clear(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    body = create_order(
        "O-1", details={"shipping_address": canary_address(), "billing_address": canary_address()}
    )
    assert await processor.process(message(body)) is Outcome.ACCEPTED
    for n in (1, 2):
        update = update_order("O-1", {"shipping_address": canary_address(f" v{n}")})
        assert await processor.process(message(update)) is Outcome.ACCEPTED

    # Positive control: the service itself reads every value back.
    async with PostgresStore(pool, MASTER).unit_of_work() as uow:
        order = await load_order(uow, "O-1")
    assert isinstance(order, orders.Order)
    assert order.details.shipping_address.name == CANARIES["name"] + " v2"
    assert order.details.billing_address.email == CANARIES["email"]

    stored = await every_row_as_text(db)
    assert "personal_data" in await db.fetchval("SELECT string_agg(tablename, ',') FROM pg_tables")
    for value in CANARIES.values():
        assert value not in stored, value
        assert value.encode().hex() not in stored, value
    # Three versions of the shipping address, one record each; the other groups did not change.
    groups = await db.fetch("SELECT field_group, count(*) FROM personal_data GROUP BY 1 ORDER BY 1")
    assert [tuple(g) for g in groups] == [
        ("billing_address", 1),
        ("contact", 1),
        ("shipping_address", 3),
    ]


async def test_a_ciphertext_opens_only_in_its_own_place_and_with_its_master_key(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    assert await processor.process(message(create_order("O-1"))) is Outcome.ACCEPTED
    async with PostgresStore(pool, MasterKey(new_key())).unit_of_work() as uow:
        with pytest.raises(DecryptionError):
            await load_order(uow, "O-1")

    await db.execute(
        "UPDATE personal_data SET ciphertext = (SELECT ciphertext FROM personal_data"
        " WHERE field_group = 'shipping_address') WHERE field_group = 'billing_address'"
    )
    async with PostgresStore(pool, MASTER).unit_of_work() as uow:
        with pytest.raises(DecryptionError):
            await load_order(uow, "O-1")


async def test_deleting_an_order_shreds_its_keys_and_records_and_no_other_order_s(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    for order_id in ("O-A", "O-B"):
        assert await processor.process(message(create_order(order_id))) is Outcome.ACCEPTED
    assert await processor.process(message(delete_order("O-A"))) is Outcome.ACCEPTED
    for table in ("data_keys", "personal_data"):
        remaining = await db.fetch(f"SELECT DISTINCT order_id FROM {table}")
        assert [r["order_id"] for r in remaining] == ["O-B"], table
    assert await processor.process(message(order_status("O-B", "ready"))) is Outcome.ACCEPTED


async def test_rotating_the_master_key_rewraps_every_data_key(
    processor: CommandProcessor[Any], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    for order_id in ("O-1", "O-2"):
        assert await processor.process(message(create_order(order_id))) is Outcome.ACCEPTED
    successor = MasterKey(new_key())
    rotating = MasterKeyring([successor, MASTER])
    rewrapped = 0
    for table in WRAPPED_KEY_TABLES:
        while chunk := await rewrap_chunk(db, rotating, table):
            rewrapped += chunk
    assert rewrapped == 6
    masters = await db.fetch("SELECT DISTINCT master_key_id FROM data_keys")
    assert [m["master_key_id"] for m in masters] == [successor.key_id]
    async with PostgresStore(pool, successor).unit_of_work() as uow:
        order = await load_order(uow, "O-2")
    assert isinstance(order, orders.Order)
    assert order.details.shipping_address.name == "Ada Lovelace"
    async with PostgresStore(pool, MASTER).unit_of_work() as uow:
        with pytest.raises(DecryptionError):
            await load_order(uow, "O-2")


def raw_message(value: bytes, key: bytes = b"O-1") -> IncomingMessage:
    return IncomingMessage("it.orders", 0, next(offsets), 1, key, value, (("trace", b"t-1"),))


async def test_dead_letters_of_orders_are_sealed_kept_for_a_while_and_erased_with_the_subject(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    canary = canary_address()
    bad = create_order("O-1", details={"customer_id": "C-9", "shipping_address": canary})
    bad["payload"]["items"][0]["quantity"] = 0  # invalid: refused and dead-lettered
    garbage = b"not json " + CANARIES["email"].encode()
    for value in (json.dumps(bad).encode(), garbage):
        assert await processor.process(raw_message(value)) is Outcome.DEAD_LETTERED

    letters = await db.fetch(
        "SELECT message_key, headers, payload FROM outbox WHERE topic = $1 ORDER BY id",
        FAMILY.topics.dead_letters,
    )
    assert len(letters) == 2
    published = b"".join(r["payload"] + r["headers"] + r["message_key"] for r in letters)
    for canary_value in CANARIES.values():
        assert canary_value.encode() not in published, canary_value
    rejections = await db.fetch(
        "SELECT payload FROM outbox WHERE topic = $1", FAMILY.topics.rejections
    )
    assert all(CANARIES["name"].encode() not in r["payload"] for r in rejections)

    # Control: the key opens the letter while it lives; it is the message as received.
    first = letters[0]
    key_id = uuid.UUID(dict(decode_headers(first["headers"]))["x-dead-letter-key"].decode())
    envelope = json.loads(await open_dead_letter(db, MASTER, key_id, first["payload"]) or b"")
    assert json.loads(base64.b64decode(envelope["value"])) == bad
    subjects = await db.fetch("SELECT customer_id FROM dead_letter_keys ORDER BY customer_id")
    assert [s["customer_id"] for s in subjects] == ["C-9", None]

    erase = redact_customer("C-9")
    erased = IncomingMessage("it.orders", 0, next(offsets), 1, b"C-9", json.dumps(erase).encode())
    assert await processor.process(erased) is Outcome.ACCEPTED
    assert await open_dead_letter(db, MASTER, key_id, first["payload"]) is None

    # The other letter named nobody: it goes when its retention ends (the relay's cleanup).
    await db.execute("UPDATE dead_letter_keys SET expires_at = now() - interval '1 second'")
    await delete_expired(db, inbox_retention_hours=1)
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0


async def test_a_letter_sealed_beside_or_after_an_erasure_is_gone_from_the_start(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    for order_id in ("O-1", "O-2", "O-3"):
        assert await processor.process(message(create_order(order_id))) is Outcome.ACCEPTED
    too_many_lines = {**address(), "lines": ["x"] * 5}
    invalid = update_order("O-1", {"shipping_address": too_many_lines})
    erase = redact_customer("CUST-1")
    erased = IncomingMessage(
        "it.orders", 1, next(offsets), 1, b"CUST-1", json.dumps(erase).encode()
    )
    # The invalid update comes first in the batch; the erasure still takes its letter.
    assert await processor.process_batch([message(invalid), erased]) == [
        Outcome.DEAD_LETTERED,
        Outcome.ACCEPTED,
    ]
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0
    # After the erasure: a letter about the erased customer's order is never kept.
    late = update_order("O-2", {"billing_address": too_many_lines})
    assert await processor.process(message(late)) is Outcome.DEAD_LETTERED
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0


async def test_a_letter_that_cannot_be_read_goes_with_the_order_its_key_names(
    processor: CommandProcessor[Any], db: asyncpg.Connection
) -> None:
    assert await processor.process(message(create_order("O-7"))) is Outcome.ACCEPTED
    unreadable = b'{"order_id": "O-7", "order_id": "O-7", "name": "' + CANARIES["name"].encode()
    assert await processor.process(raw_message(unreadable, key=b"O-7")) is Outcome.DEAD_LETTERED
    [linked] = await db.fetch("SELECT tenant_id, order_id FROM dead_letter_keys")
    assert tuple(linked) == (None, "O-7")
    redact = order_command("order.redact", "O-7", {})
    assert await processor.process(message(redact)) is Outcome.ACCEPTED
    cancel = order_status("O-7", "cancelled")  # the erasure waited for fulfilment to stop
    assert await processor.process(message(cancel)) is Outcome.ACCEPTED
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys") == 0
