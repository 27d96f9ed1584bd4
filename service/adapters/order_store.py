"""Customer orders in Postgres: order rows, item rows, vouchers, history, and encrypted records
of their personal data (see personal_data.py): no address value is stored in the clear."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from service.adapters.crypto import MasterKey
from service.adapters.personal_data import (
    PersonalDataVault,
    addresses_from,
    groups_of,
)
from service.app.ports import HistoryEntry
from service.domain import orders
from service.domain.orders import DataGroup
from service.domain.orders.rules import HOLDS_VOUCHER

RECORD_COLUMNS = {
    DataGroup.SHIPPING_ADDRESS: "shipping_record",
    DataGroup.BILLING_ADDRESS: "billing_record",
    DataGroup.CONTACT: "contact_record",
}

_LOAD = """
SELECT o.customer_id, o.warehouse_id, o.status, o.cancel_reason, o.version, o.voucher_code,
       o.shipping_record, o.billing_record, o.contact_record, o.redacted_groups,
       o.redaction_pending,
       (SELECT json_agg(json_build_object('sku', i.sku, 'quantity', i.quantity,
                                          'unit_price', i.unit_price::text,
                                          'currency', i.currency) ORDER BY i.line_no)
        FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.order_id
       )::text AS items
FROM orders o
WHERE o.tenant_id = $1 AND o.order_id = $2
"""


class PostgresOrders:
    def __init__(self, conn: asyncpg.Connection, master: MasterKey) -> None:
        self._conn = conn
        self._vault = PersonalDataVault(conn, master)

    async def load(self, tenant_id: str, order_id: str) -> orders.State | None:
        row = await self._conn.fetchrow(_LOAD, tenant_id, order_id)
        if row is not None:
            records = {group: row[column] for group, column in RECORD_COLUMNS.items()}
            groups = await self._vault.read(tenant_id, order_id, records)
            return _order_from_row(tenant_id, order_id, row, *addresses_from(groups))
        tombstone = await self._conn.fetchrow(
            "SELECT last_version, deleted_at FROM order_tombstones"
            " WHERE tenant_id = $1 AND order_id = $2",
            tenant_id,
            order_id,
        )
        if tombstone is None:
            return None
        return orders.DeletedOrder(
            tenant_id, order_id, tombstone["last_version"], tombstone["deleted_at"]
        )

    async def voucher_holder(self, tenant_id: str, voucher_code: str) -> str | None:
        # Held until commit, so two orders racing for one voucher are decided one after the other.
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 2))",
            f"{tenant_id}\x1f{voucher_code}",
        )
        holder: str | None = await self._conn.fetchval(
            "SELECT order_id FROM order_vouchers WHERE tenant_id = $1 AND voucher_code = $2",
            tenant_id,
            voucher_code,
        )
        return holder

    async def lock_customer(self, tenant_id: str, customer_id: str) -> None:
        # Serialises an erasure with writes of the customer's personal data; every caller holds
        # its order locks first, so the lock order is the same everywhere.
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 3))",
            f"{tenant_id}\x1f{customer_id}",
        )

    async def customer_erased(self, tenant_id: str, customer_id: str) -> bool:
        await self.lock_customer(tenant_id, customer_id)
        erased: bool = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM erased_customers"
            " WHERE tenant_id = $1 AND customer_id = $2)",
            tenant_id,
            customer_id,
        )
        return erased

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT order_id FROM orders WHERE tenant_id = $1 AND customer_id = $2 ORDER BY 1",
            tenant_id,
            customer_id,
        )
        return [row["order_id"] for row in rows]

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        # A dead letter whose tenant could not be read is destroyed too: erring towards erasure.
        status: str = await self._conn.execute(
            "DELETE FROM dead_letter_keys WHERE customer_id = $2"
            " AND (tenant_id = $1 OR tenant_id IS NULL)",
            tenant_id,
            customer_id,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        redactions: int = await self._conn.fetchval(
            """
            INSERT INTO erased_customers (tenant_id, customer_id) VALUES ($1, $2)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
            SET redactions = erased_customers.redactions + 1, last_erased_at = now()
            RETURNING redactions
            """,
            tenant_id,
            customer_id,
        )
        return redactions

    async def save(
        self,
        order: orders.Order,
        history: Sequence[HistoryEntry],
        previous: orders.Order | None,
    ) -> None:
        d = order.details
        key = (order.tenant_id, order.order_id)
        records = await self._records_for(order, previous)
        erased = order.redacted - (previous.redacted if previous else frozenset())
        if erased:
            await self._vault.destroy_groups(*key, [g for g in erased])
        await self._conn.execute(
            """
            INSERT INTO orders (tenant_id, order_id, customer_id, warehouse_id, status,
                                cancel_reason, version, voucher_code, shipping_record,
                                billing_record, contact_record, redacted_groups,
                                redaction_pending)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason,
                version = EXCLUDED.version, shipping_record = EXCLUDED.shipping_record,
                billing_record = EXCLUDED.billing_record,
                contact_record = EXCLUDED.contact_record,
                redacted_groups = EXCLUDED.redacted_groups,
                redaction_pending = EXCLUDED.redaction_pending, updated_at = now()
            """,
            *key,
            d.customer_id,
            d.warehouse_id,
            order.status.value,
            order.cancel_reason.value if order.cancel_reason else None,
            order.version,
            d.voucher_code,
            *records,
            sorted(g.value for g in order.redacted),
            sorted(g.value for g in order.redaction_pending),
        )
        if previous is None or previous.details.items != d.items:
            await self._replace_items(order, new=previous is None)
        await self._move_voucher(order, previous)
        await self._conn.executemany(
            """
            INSERT INTO order_history (tenant_id, order_id, version, command_id, event_id,
                                       event_type, document, shipping_record, billing_record,
                                       contact_record)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
            """,
            [
                (
                    *key,
                    entry.version,
                    entry.command_id,
                    entry.event_id,
                    entry.event_type,
                    entry.snapshot.decode(),
                    *records,
                )
                for entry in history
            ],
        )

    async def _replace_items(self, order: orders.Order, *, new: bool) -> None:
        key = (order.tenant_id, order.order_id)
        items = order.details.items
        if not new:
            await self._conn.execute(
                "DELETE FROM order_items WHERE tenant_id = $1 AND order_id = $2", *key
            )
        await self._conn.execute(
            """
            INSERT INTO order_items (tenant_id, order_id, line_no, sku, quantity, unit_price,
                                     currency)
            SELECT $1, $2, line_no, sku, quantity, unit_price, currency
            FROM unnest($3::text[], $4::int[], $5::numeric[], $6::text[]) WITH ORDINALITY
                AS i(sku, quantity, unit_price, currency, line_no)
            """,
            *key,
            [i.sku for i in items],
            [i.quantity for i in items],
            [i.unit_price for i in items],
            [i.currency for i in items],
        )

    async def _move_voucher(self, order: orders.Order, previous: orders.Order | None) -> None:
        """The voucher row follows whether the order holds its voucher; untouched otherwise."""
        holds = _held_voucher(order)
        held = _held_voucher(previous) if previous is not None else None
        if holds == held:
            return
        key = (order.tenant_id, order.order_id)
        if held is not None:
            await self._conn.execute(
                "DELETE FROM order_vouchers WHERE tenant_id = $1 AND order_id = $2", *key
            )
        if holds is not None:
            await self._conn.execute(
                "INSERT INTO order_vouchers (tenant_id, voucher_code, order_id)"
                " VALUES ($1, $3, $2)",
                *key,
                holds,
            )

    async def delete(self, tombstone: orders.DeletedOrder) -> None:
        key = (tombstone.tenant_id, tombstone.order_id)
        # Items and the voucher row go with the order (ON DELETE CASCADE); its personal data is
        # crypto-shredded with it.
        await self._conn.execute("DELETE FROM orders WHERE tenant_id = $1 AND order_id = $2", *key)
        await self._conn.execute(
            "DELETE FROM order_history WHERE tenant_id = $1 AND order_id = $2", *key
        )
        await self._vault.destroy_order(*key)
        await self._conn.execute(
            "INSERT INTO order_tombstones (tenant_id, order_id, last_version) VALUES ($1, $2, $3)",
            *key,
            tombstone.version,
        )

    async def _records_for(
        self, order: orders.Order, previous: orders.Order | None
    ) -> list[uuid.UUID]:
        """The record of each group: the current one while unchanged, else a new one."""
        current = groups_of(order.details)
        before = groups_of(previous.details) if previous is not None else {}
        kept: dict[DataGroup, uuid.UUID] = {}
        if previous is not None:
            existing = await self._conn.fetchrow(
                "SELECT shipping_record, billing_record, contact_record FROM orders"
                " WHERE tenant_id = $1 AND order_id = $2",
                order.tenant_id,
                order.order_id,
            )
            if existing is not None:
                kept = {
                    group: existing[column]
                    for group, column in RECORD_COLUMNS.items()
                    if before.get(group) == current[group]
                }
        changed = {group: value for group, value in current.items() if group not in kept}
        stored = await self._vault.store_many(
            order.tenant_id,
            order.order_id,
            order.details.customer_id,
            changed,
            new_order=previous is None,
        )
        return [kept.get(group) or stored[group] for group in RECORD_COLUMNS]


def _held_voucher(order: orders.Order) -> str | None:
    return order.details.voucher_code if order.status in HOLDS_VOUCHER else None


def _order_from_row(
    tenant_id: str,
    order_id: str,
    row: asyncpg.Record,
    shipping: orders.Address,
    billing: orders.Address,
) -> orders.Order:
    items = tuple(
        orders.Item(i["sku"], i["quantity"], Decimal(i["unit_price"]), i["currency"])
        for i in json.loads(row["items"])
    )
    details = orders.OrderDetails(
        customer_id=row["customer_id"],
        warehouse_id=row["warehouse_id"],
        items=items,
        shipping_address=shipping,
        billing_address=billing,
        voucher_code=row["voucher_code"],
    )
    reason = row["cancel_reason"]
    return orders.Order(
        tenant_id,
        order_id,
        orders.Status(row["status"]),
        row["version"],
        details,
        orders.CancelReason(reason) if reason else None,
        frozenset(orders.DataGroup(g) for g in row["redacted_groups"]),
        frozenset(orders.DataGroup(g) for g in row["redaction_pending"]),
    )
