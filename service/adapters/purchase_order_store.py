"""Purchase orders in Postgres: the current document, its history, and tombstones, read and
written set-based, a statement for a whole batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.purchase_orders import PurchaseOrderSnapshot
from service.adapters.history import actor_columns
from service.app.ports import DocumentKey, PurchaseOrderChanges
from service.app.purchase_orders.translate import order_from_snapshot
from service.domain.purchase_orders import DeletedPurchaseOrder, PurchaseOrder, State

_LOAD = """
SELECT k.tenant_id, k.purchase_order_id, p.version, p.document::text AS document,
       t.last_version, t.deleted_at
FROM unnest($1::text[], $2::text[]) AS k(tenant_id, purchase_order_id)
LEFT JOIN purchase_orders p USING (tenant_id, purchase_order_id)
LEFT JOIN purchase_order_tombstones t USING (tenant_id, purchase_order_id)
WHERE p.version IS NOT NULL OR t.last_version IS NOT NULL
"""

# The live and the deleted orders of a batch are disjoint, so one statement writes both.
_SAVE = """
WITH saved AS (
    INSERT INTO purchase_orders (tenant_id, purchase_order_id, status, version, document)
    SELECT tenant_id, purchase_order_id, status, version, document::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
        AS s(tenant_id, purchase_order_id, status, version, document)
    ON CONFLICT (tenant_id, purchase_order_id) DO UPDATE
    SET status = EXCLUDED.status, version = EXCLUDED.version,
        document = EXCLUDED.document, updated_at = now()
), history AS (
    INSERT INTO purchase_order_history
        (tenant_id, purchase_order_id, version, command_id, event_id, event_type, document,
         actor_type, actor_id, actor_issuer)
    SELECT tenant_id, purchase_order_id, version, command_id, event_id, event_type,
           document::jsonb, actor_type, actor_id, actor_issuer
    FROM unnest($6::text[], $7::text[], $8::bigint[], $9::uuid[], $10::uuid[], $11::text[],
                $12::text[], $16::text[], $17::text[], $18::text[])
        AS h(tenant_id, purchase_order_id, version, command_id, event_id, event_type, document,
             actor_type, actor_id, actor_issuer)
), gone AS (
    SELECT * FROM unnest($13::text[], $14::text[], $15::bigint[])
        AS g(tenant_id, purchase_order_id, last_version)
), deleted AS (
    DELETE FROM purchase_orders p USING gone g
    WHERE p.tenant_id = g.tenant_id AND p.purchase_order_id = g.purchase_order_id
), deleted_history AS (
    DELETE FROM purchase_order_history h USING gone g
    WHERE h.tenant_id = g.tenant_id AND h.purchase_order_id = g.purchase_order_id
)
INSERT INTO purchase_order_tombstones (tenant_id, purchase_order_id, last_version)
SELECT tenant_id, purchase_order_id, last_version FROM gone
"""


class PostgresPurchaseOrders:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def load_many(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, State]:
        rows = await self._conn.fetch(
            _LOAD, [tenant for tenant, _ in keys], [document for _, document in keys]
        )
        found: dict[DocumentKey, State] = {}
        for row in rows:
            tenant_id, purchase_order_id = row["tenant_id"], row["purchase_order_id"]
            if row["document"] is None:
                found[(tenant_id, purchase_order_id)] = DeletedPurchaseOrder(
                    tenant_id, purchase_order_id, row["last_version"], row["deleted_at"]
                )
                continue
            snapshot = PurchaseOrderSnapshot.model_validate_json(row["document"])
            found[(tenant_id, purchase_order_id)] = order_from_snapshot(
                tenant_id, purchase_order_id, row["version"], snapshot
            )
        return found

    async def save_many(self, changes: PurchaseOrderChanges) -> None:
        live = [s for s in changes.final.values() if isinstance(s, PurchaseOrder)]
        gone = [s for s in changes.final.values() if isinstance(s, DeletedPurchaseOrder)]
        history = [
            (key, entry)
            for key, entries in changes.history.items()
            if isinstance(changes.final[key], PurchaseOrder)
            for entry in entries
        ]
        if not live and not gone:
            return
        await self._conn.execute(
            _SAVE,
            [s.tenant_id for s in live],
            [s.purchase_order_id for s in live],
            [s.status.value for s in live],
            [s.version for s in live],
            [changes.snapshots[(s.tenant_id, s.purchase_order_id)].decode() for s in live],
            [tenant for (tenant, _), _ in history],
            [document for (_, document), _ in history],
            [entry.version for _, entry in history],
            [entry.command_id for _, entry in history],
            [entry.event_id for _, entry in history],
            [entry.event_type for _, entry in history],
            [entry.snapshot.decode() for _, entry in history],
            [s.tenant_id for s in gone],
            [s.purchase_order_id for s in gone],
            [s.version for s in gone],
            *actor_columns([entry for _, entry in history]),
        )
