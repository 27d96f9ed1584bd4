"""Purchase orders in Postgres: the current document, its history, and tombstones."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.purchase_orders import PurchaseOrderSnapshot
from service.app.ports import HistoryEntry
from service.app.purchase_orders.translate import order_from_snapshot
from service.domain.purchase_orders import DeletedPurchaseOrder, PurchaseOrder, State


class PostgresPurchaseOrders:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def load(self, tenant_id: str, purchase_order_id: str) -> State | None:
        row = await self._conn.fetchrow(
            "SELECT version, document::text AS document, NULL AS deleted_at FROM purchase_orders"
            " WHERE tenant_id = $1 AND purchase_order_id = $2"
            " UNION ALL"
            " SELECT last_version, NULL, deleted_at FROM purchase_order_tombstones"
            " WHERE tenant_id = $1 AND purchase_order_id = $2",
            tenant_id,
            purchase_order_id,
        )
        if row is None:
            return None
        if row["deleted_at"] is not None:
            return DeletedPurchaseOrder(
                tenant_id, purchase_order_id, row["version"], row["deleted_at"]
            )
        snapshot = PurchaseOrderSnapshot.model_validate_json(row["document"])
        return order_from_snapshot(tenant_id, purchase_order_id, row["version"], snapshot)

    async def delete(self, tombstone: DeletedPurchaseOrder) -> None:
        await self._conn.execute(
            """
            WITH gone AS (
                DELETE FROM purchase_orders WHERE tenant_id = $1 AND purchase_order_id = $2
            ), history AS (
                DELETE FROM purchase_order_history WHERE tenant_id = $1 AND purchase_order_id = $2
            )
            INSERT INTO purchase_order_tombstones (tenant_id, purchase_order_id, last_version)
            VALUES ($1, $2, $3)
            """,
            tombstone.tenant_id,
            tombstone.purchase_order_id,
            tombstone.version,
        )

    async def save(
        self, order: PurchaseOrder, snapshot: bytes, history: Sequence[HistoryEntry]
    ) -> None:
        await self._conn.execute(
            """
            WITH saved AS (
                INSERT INTO purchase_orders
                    (tenant_id, purchase_order_id, status, version, document)
                VALUES ($1, $2, $3, $4, $5::jsonb)
                ON CONFLICT (tenant_id, purchase_order_id) DO UPDATE
                SET status = EXCLUDED.status, version = EXCLUDED.version,
                    document = EXCLUDED.document, updated_at = now()
            )
            INSERT INTO purchase_order_history
                (tenant_id, purchase_order_id, version, command_id, event_id, event_type, document)
            SELECT $1, $2, version, command_id, event_id, event_type, document::jsonb
            FROM unnest($6::bigint[], $7::uuid[], $8::uuid[], $9::text[], $10::text[])
                AS h(version, command_id, event_id, event_type, document)
            """,
            order.tenant_id,
            order.purchase_order_id,
            order.status.value,
            order.version,
            snapshot.decode(),
            [entry.version for entry in history],
            [entry.command_id for entry in history],
            [entry.event_id for entry in history],
            [entry.event_type for entry in history],
            [entry.snapshot.decode() for entry in history],
        )
