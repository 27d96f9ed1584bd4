"""Stock levels kept from inventory movements, exactly once.

Each batch is applied in one transaction that records the movement ids it applied (so a
redelivered or republished movement changes nothing), adds the new quantities, and stores the
next offset of each partition (so a crash between applying and any Kafka commit cannot apply a
batch twice: the offsets live with the stock, and Kafka's are never used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from contracts.inventory import InventoryMovement

SCHEMA = "reference_inventory"
_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.stock (
    tenant_id text NOT NULL, warehouse_id text NOT NULL, sku text NOT NULL, bucket text NOT NULL,
    quantity bigint NOT NULL,
    PRIMARY KEY (tenant_id, warehouse_id, sku, bucket)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.applied (
    movement_id uuid PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS applied_at ON {SCHEMA}.applied (applied_at);
CREATE TABLE IF NOT EXISTS {SCHEMA}.offsets (
    topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

_APPLY = f"""
WITH incoming AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
        AS m(movement_id, tenant_id, warehouse_id, sku, bucket, quantity)
), new AS (
    INSERT INTO {SCHEMA}.applied (movement_id) SELECT movement_id FROM incoming
    ON CONFLICT DO NOTHING RETURNING movement_id
), totals AS (
    SELECT tenant_id, warehouse_id, sku, bucket, sum(quantity) AS quantity
    FROM incoming JOIN new USING (movement_id) GROUP BY 1, 2, 3, 4
), stocked AS (
    INSERT INTO {SCHEMA}.stock SELECT * FROM totals
    ON CONFLICT (tenant_id, warehouse_id, sku, bucket)
    DO UPDATE SET quantity = {SCHEMA}.stock.quantity + EXCLUDED.quantity
    RETURNING 1
)
INSERT INTO {SCHEMA}.offsets (topic, partition, next_offset)
SELECT * FROM unnest($7::text[], $8::int[], $9::bigint[])
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
"""


@dataclass(frozen=True)
class StockLevel:
    incoming: int
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


async def create_tables(conn: asyncpg.Connection) -> None:
    await conn.execute(_CREATE)


async def apply(
    conn: asyncpg.Connection,
    movements: Sequence[InventoryMovement],
    next_offsets: Mapping[tuple[str, int], int],
) -> None:
    """Apply a batch and move the partitions' offsets past it, in one transaction."""
    unique = list({m.movement_id: m for m in reversed(movements)}.values())
    positions = list(next_offsets.items())
    async with conn.transaction():
        await conn.execute(
            _APPLY,
            [m.movement_id for m in unique],
            [m.tenant_id for m in unique],
            [m.warehouse_id for m in unique],
            [m.sku for m in unique],
            [m.bucket for m in unique],
            [m.quantity for m in unique],
            [topic for (topic, _), _ in positions],
            [partition for (_, partition), _ in positions],
            [offset for _, offset in positions],
        )


async def next_offsets(conn: asyncpg.Connection, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        f"SELECT partition, next_offset FROM {SCHEMA}.offsets WHERE topic = $1", topic
    )
    return {row["partition"]: row["next_offset"] for row in rows}


async def forget_applied(conn: asyncpg.Connection, older_than_hours: float) -> int:
    """Drop movement ids past the window (kept at least as long as the topic keeps messages)."""
    status: str = await conn.execute(
        f"DELETE FROM {SCHEMA}.applied WHERE applied_at < now() - make_interval(hours => $1)",
        older_than_hours,
    )
    return int(status.rsplit(" ", 1)[-1])


async def stock_of(
    conn: asyncpg.Connection, tenant_id: str, warehouse_id: str, sku: str
) -> StockLevel:
    rows = await conn.fetch(
        f"SELECT bucket, quantity FROM {SCHEMA}.stock"
        " WHERE tenant_id = $1 AND warehouse_id = $2 AND sku = $3",
        tenant_id,
        warehouse_id,
        sku,
    )
    buckets = {row["bucket"]: row["quantity"] for row in rows}
    return StockLevel(
        buckets.get("incoming", 0), buckets.get("on_hand", 0), buckets.get("reserved", 0)
    )


async def all_stock(conn: asyncpg.Connection) -> dict[tuple[str, str, str, str], int]:
    rows = await conn.fetch(f"SELECT * FROM {SCHEMA}.stock WHERE quantity <> 0")
    return {
        (row["tenant_id"], row["warehouse_id"], row["sku"], row["bucket"]): row["quantity"]
        for row in rows
    }
