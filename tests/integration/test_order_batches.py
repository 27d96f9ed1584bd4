"""Customer-order batches decided set-based in one transaction against a real Postgres: a batch
decides exactly what the same commands decide one at a time, vouchers and erasures included,
and every version in history keeps its own personal data."""

from __future__ import annotations

import json
import random
import uuid
from itertools import count
from typing import Any

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.order_store import RECORD_COLUMNS
from service.adapters.personal_data import PersonalDataVault
from service.adapters.unit_of_work import PostgresStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.retry import RetryPolicy
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
TOPICS = FAMILY.topics
MASTER = MasterKey(new_key())
SIGNER = Signer(new_key(), "it")
offsets = count()


def message(body: dict[str, Any]) -> IncomingMessage:
    key = str(body.get("order_id") or body["customer_id"]).encode()
    return IncomingMessage("it.orders", 0, next(offsets), 1, key, json.dumps(body).encode())


def processor(pool: asyncpg.Pool) -> CommandProcessor[Any]:
    return CommandProcessor(
        PostgresStore(pool, MASTER),
        DocumentDecider(FAMILY, "it.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=RetryPolicy(first_backoff_seconds=0.01, max_backoff_seconds=0.05),
    )


def random_commands(rng: random.Random, tenant: str, length: int) -> list[dict[str, Any]]:
    """A mix of every order command over a few orders, two customers and two vouchers, so that
    commands in one batch meet: the same order, a contested voucher, an erased customer."""
    orders = [f"O-{n}" for n in range(6)]
    commands = []
    for _ in range(length):
        order_id = rng.choice(orders)
        customer = rng.choice(["CUST-A", "CUST-B"])
        kind = rng.choices(
            ["create", "update", "status", "delete", "redact", "redact_customer"],
            weights=[6, 3, 6, 1, 1, 1],
        )[0]
        if kind == "create":
            details: dict[str, Any] = {
                "customer_id": customer,
                "shipping_address": address(f"Ship {rng.randrange(100)}"),
            }
            if rng.random() < 0.5:
                details["voucher_code"] = rng.choice(["V-1", "V-2"])
            commands.append(create_order(order_id, tenant_id=tenant, details=details))
        elif kind == "update":
            payload = {"shipping_address": address(f"Moved {rng.randrange(100)}")}
            commands.append(update_order(order_id, payload, tenant_id=tenant))
        elif kind == "status":
            status = rng.choice(["ready", "fulfilled", "sent", "delivered", "cancelled"])
            reason = "customer" if status == "cancelled" else None
            commands.append(order_status(order_id, status, reason, tenant_id=tenant))
        elif kind == "delete":
            commands.append(delete_order(order_id, tenant_id=tenant))
        elif kind == "redact":
            commands.append(order_command("order.redact", order_id, {}, tenant_id=tenant))
        else:
            commands.append(redact_customer(customer, tenant_id=tenant))
    return commands


async def outcome_of(db: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """Everything the commands of a tenant left, without ids and times that differ per run."""
    events = [
        (e["type"], e.get("order_id") or e.get("customer_id"), e["version"], _stable(e["data"]))
        for e in await _published(db, TOPICS.events)
        if e["tenant_id"] == tenant
    ]
    rejections = [
        (r["type"], [error["error_code"] for error in r["errors"]])
        for r in await _published(db, TOPICS.rejections)
        if r["tenant_id"] == tenant
    ]
    movements = [
        (m["source"]["id"], m["source"]["version"], m["sku"], m["bucket"], m["quantity"])
        for m in await _published(db, "it.movements")
        if m["tenant_id"] == tenant
    ]
    rows = await db.fetch(
        "SELECT order_id, status, version, voucher_code, redacted_groups, redaction_pending"
        " FROM orders WHERE tenant_id = $1 ORDER BY order_id",
        tenant,
    )
    vouchers = await db.fetch(
        "SELECT voucher_code, order_id FROM order_vouchers WHERE tenant_id = $1 ORDER BY 1",
        tenant,
    )
    tombstones = await db.fetch(
        "SELECT order_id, last_version FROM order_tombstones WHERE tenant_id = $1 ORDER BY 1",
        tenant,
    )
    return {
        "events": events,
        "rejections": rejections,
        "movements": movements,
        "orders": [tuple(row) for row in rows],
        "vouchers": [tuple(row) for row in vouchers],
        "tombstones": [tuple(row) for row in tombstones],
        "history": await history_with_personal_data(db, tenant),
        "erased": await db.fetch(
            "SELECT customer_id, redactions FROM erased_customers WHERE tenant_id = $1 ORDER BY 1",
            tenant,
        ),
    }


async def history_with_personal_data(db: asyncpg.Connection, tenant: str) -> list[Any]:
    """Each history version with the personal data its records open to (None once shredded)."""
    vault = PersonalDataVault(db, MASTER)
    rows = await db.fetch(
        "SELECT order_id, version, event_type, shipping_record, billing_record, contact_record"
        " FROM order_history WHERE tenant_id = $1 ORDER BY order_id, version",
        tenant,
    )
    versions = []
    for row in rows:
        records = {group: row[column] for group, column in RECORD_COLUMNS.items()}
        opened = await vault.read_many({(tenant, row["order_id"]): records})
        groups = opened.get((tenant, row["order_id"]), {})
        versions.append(
            (row["order_id"], row["version"], row["event_type"], json.dumps(groups, sort_keys=True))
        )
    return versions


def _stable(data: Any) -> Any:
    """Event data without the fields that differ between two runs of the same commands."""
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if k != "completed_at"}
    if isinstance(data, list):
        return [_stable(v) for v in data]
    return data


async def _published(db: asyncpg.Connection, topic: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", topic)
    return [json.loads(row["payload"]) for row in rows]


@pytest.mark.parametrize("seed", range(4))
async def test_a_batch_decides_exactly_what_the_commands_decide_one_at_a_time(
    pool: asyncpg.Pool, db: asyncpg.Connection, seed: int
) -> None:
    rng = random.Random(seed)
    commands = random_commands(rng, "one-by-one", 80)
    # The same commands for another tenant, with new command ids.
    batched = [{**c, "tenant_id": "batched", "command_id": str(uuid.uuid4())} for c in commands]
    one_by_one = processor(pool)
    singles = [await one_by_one.process(message(c)) for c in commands]
    together = await processor(pool).process_batch([message(c) for c in batched])

    assert together == singles
    assert Outcome.ACCEPTED in singles
    assert Outcome.REJECTED in singles
    assert await outcome_of(db, "batched") == await outcome_of(db, "one-by-one")


async def test_a_voucher_freed_earlier_in_the_batch_can_be_taken_later_in_it(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    voucher = {"voucher_code": "SPRING"}
    outcomes = await processor(pool).process_batch(
        [
            message(create_order("O-1", details=voucher)),
            message(create_order("O-2", details=voucher)),  # held by O-1
            message(order_status("O-1", "cancelled", "customer")),
            message(create_order("O-3", details=voucher)),  # free again
        ]
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert await db.fetch("SELECT voucher_code, order_id FROM order_vouchers") == [
        ("SPRING", "O-3")
    ]


async def test_each_version_in_history_keeps_its_own_address(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    outcomes = await processor(pool).process_batch(
        [
            message(create_order("O-1", details={"shipping_address": address("First")})),
            message(update_order("O-1", {"shipping_address": address("Second")})),
            message(update_order("O-1", {"shipping_address": address("Third")})),
            message(order_status("O-1", "ready")),
        ]
    )
    assert outcomes == [Outcome.ACCEPTED] * 4
    names = [
        json.loads(groups).get("shipping_address", {}).get("name")
        for _, _, _, groups in await history_with_personal_data(db, "tenant-a")
    ]
    assert names == ["First", "Second", "Third", "Third"]
    # The current order's record is the last version's: nothing was sealed twice.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM personal_data WHERE field_group = 'shipping_address'"
        )
        == 3
    )


async def test_an_order_created_and_deleted_in_one_batch_leaves_only_its_tombstone(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    outcomes = await processor(pool).process_batch(
        [
            message(create_order("O-1", details={"voucher_code": "ONCE"})),
            message(update_order("O-1", {"shipping_address": address("Moved")})),
            message(delete_order("O-1")),
            message(create_order("O-1")),  # an id is never reused
            message(create_order("O-2", details={"voucher_code": "ONCE"})),  # freed
        ]
    )
    assert outcomes == [Outcome.ACCEPTED] * 3 + [Outcome.REJECTED, Outcome.ACCEPTED]
    for table in ("orders", "order_items", "order_history", "personal_data", "data_keys"):
        kept = await db.fetch(f"SELECT DISTINCT order_id FROM {table}")
        assert [row["order_id"] for row in kept] == ["O-2"], table
    assert await db.fetch("SELECT voucher_code, order_id FROM order_vouchers") == [("ONCE", "O-2")]
    assert await db.fetch("SELECT order_id, last_version FROM order_tombstones") == [("O-1", 3)]


async def test_a_customer_erased_mid_batch_is_erased_for_the_commands_after_it(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    outcomes = await processor(pool).process_batch(
        [
            message(create_order("O-1", details={"customer_id": "CUST-9"})),
            message(order_status("O-1", "cancelled", "customer")),
            message(redact_customer("CUST-9")),
            message(create_order("O-2", details={"customer_id": "CUST-9"})),
        ]
    )
    assert outcomes == [Outcome.ACCEPTED] * 3 + [Outcome.REJECTED]
    [*_, rejection] = await _published(db, TOPICS.rejections)
    assert rejection["order_id"] == "O-2"
    assert rejection["errors"][0]["field"] == "payload.customer_id"
    row = await db.fetchrow("SELECT redacted_groups FROM orders WHERE order_id = 'O-1'")
    assert sorted(row["redacted_groups"]) == ["billing_address", "contact", "shipping_address"]
    assert await db.fetchval("SELECT count(*) FROM data_keys") == 0
