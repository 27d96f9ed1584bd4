"""Versioned SQL migrations, applied once under an advisory lock."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from service.adapters.database import migrate, migrations, pending_migrations
from service.devstack.provision import Endpoints
from service.errors import MigrationError


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [version for version, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_concurrent_starts_apply_each_migration_once(
    stack_admin: asyncpg.Connection, stack: Endpoints
) -> None:
    await stack_admin.execute("DROP DATABASE IF EXISTS migrate_race WITH (FORCE)")
    await stack_admin.execute("CREATE DATABASE migrate_race")
    url = stack.database_url.rsplit("/", 1)[0] + "/migrate_race"
    results = await asyncio.gather(*(migrate(url) for _ in range(4)))
    assert sorted(len(applied) for applied in results) == [0, 0, 0, len(migrations())]
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(migrations())
    finally:
        await conn.close()
    await stack_admin.execute("DROP DATABASE migrate_race WITH (FORCE)")


async def test_a_database_ahead_of_this_build_is_refused(
    database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')"
    )
    with pytest.raises(MigrationError, match=r"\[999\]"):
        await migrate(database_url)


async def test_pending_migrations_are_read_without_changing_the_schema(
    stack_admin: asyncpg.Connection, stack: Endpoints, database_url: str
) -> None:
    assert await pending_migrations(database_url) == []
    await stack_admin.execute("DROP DATABASE IF EXISTS pending_check WITH (FORCE)")
    await stack_admin.execute("CREATE DATABASE pending_check")
    url = stack.database_url.rsplit("/", 1)[0] + "/pending_check"
    try:
        assert await pending_migrations(url) == [name for _, name, _ in migrations()]
        conn = await asyncpg.connect(url)
        try:
            # A role without DDL rights can run the check: it created nothing.
            assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
            await conn.execute(
                "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL)"
            )
            await conn.execute("INSERT INTO schema_migrations VALUES (1, '0001_initial.sql')")
        finally:
            await conn.close()
        assert await pending_migrations(url) == [name for _, name, _ in migrations()[1:]]
    finally:
        await stack_admin.execute("DROP DATABASE pending_check WITH (FORCE)")


async def test_a_failing_migration_names_itself_and_stays_pending(
    database_url: str, db: asyncpg.Connection
) -> None:
    first_version, first_name, _ = migrations()[0]
    await db.execute("DELETE FROM schema_migrations WHERE version = $1", first_version)
    # Its tables exist already, so applying it again fails, as a broken migration would.
    with pytest.raises(MigrationError, match=rf"migration {first_name} failed \(DuplicateTable"):
        await migrate(database_url)
    assert await pending_migrations(database_url) == [first_name]


async def test_order_items_move_into_their_orders_in_line_order(
    stack_admin: asyncpg.Connection, stack: Endpoints
) -> None:
    """0021: the items of orders written before it are their rows' `items`, in line order with
    their prices' text, and the order_items view reads them as the table did."""
    await stack_admin.execute("DROP DATABASE IF EXISTS items_move WITH (FORCE)")
    await stack_admin.execute("CREATE DATABASE items_move")
    url = stack.database_url.rsplit("/", 1)[0] + "/items_move"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version >= 21:
                break
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, name)
        await conn.execute(
            "INSERT INTO orders (tenant_id, order_id, customer_id, warehouse_id, status, version,"
            " shipping_record, billing_record, contact_record)"
            " SELECT 't', o, 'CUST-1', 'WH-1', 'new', 1, gen_random_uuid(), gen_random_uuid(),"
            " gen_random_uuid() FROM unnest(ARRAY['O-1', 'O-2']) AS o"
        )
        before = [
            ("O-1", 2, "SKU-B", 1, "0.0100", "EUR"),
            ("O-1", 1, "SKU-A", 3, "12.50", "EUR"),
            ("O-2", 1, "SKU-C", 7, "5", "USD"),
        ]
        await conn.executemany(
            "INSERT INTO order_items VALUES ('t', $1, $2, $3, $4, $5::numeric, $6)", before
        )

        assert await migrate(url) == [name for version, name, _ in migrations() if version >= 21]

        items = {
            row["order_id"]: json.loads(row["items"])
            for row in await conn.fetch("SELECT order_id, items::text FROM orders")
        }
        assert items == {
            "O-1": [
                {"sku": "SKU-A", "quantity": 3, "unit_price": "12.50", "currency": "EUR"},
                {"sku": "SKU-B", "quantity": 1, "unit_price": "0.0100", "currency": "EUR"},
            ],
            "O-2": [{"sku": "SKU-C", "quantity": 7, "unit_price": "5", "currency": "USD"}],
        }
        viewed = await conn.fetch(
            "SELECT order_id, line_no, sku, quantity, unit_price::text, currency"
            " FROM order_items ORDER BY order_id, line_no"
        )
        assert [tuple(row) for row in viewed] == sorted(before)
    finally:
        await conn.close()
        await stack_admin.execute("DROP DATABASE items_move WITH (FORCE)")
