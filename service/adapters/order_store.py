"""Customer orders in Postgres: order rows, item rows, shared address rows, vouchers, history."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import asyncpg

from service.app.ports import HistoryEntry
from service.domain import orders
from service.domain.orders.rules import HOLDS_VOUCHER

# Address rows are content-addressed per customer: the same address used by several orders of a
# customer is one row, which outlives any one of those orders.
_ADDRESS_NAMESPACE = uuid.UUID("6f1d3c1e-4a55-4c1b-9d86-2f0e9b7c3a10")

_LOAD = """
SELECT o.customer_id, o.warehouse_id, o.status, o.cancel_reason, o.version, o.voucher_code,
       row_to_json(s)::text AS shipping, row_to_json(b)::text AS billing,
       (SELECT json_agg(json_build_object('sku', i.sku, 'quantity', i.quantity,
                                          'unit_price', i.unit_price::text,
                                          'currency', i.currency) ORDER BY i.line_no)
        FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.order_id
       )::text AS items
FROM orders o
JOIN addresses s ON s.address_id = o.shipping_address_id
JOIN addresses b ON b.address_id = o.billing_address_id
WHERE o.tenant_id = $1 AND o.order_id = $2
"""


def address_id(tenant_id: str, customer_id: str, address: orders.Address) -> uuid.UUID:
    content = json.dumps(
        [
            address.name,
            address.lines,
            address.city,
            address.postal_code,
            address.country,
            address.phone,
            address.email,
        ],
    )
    return uuid.uuid5(_ADDRESS_NAMESPACE, f"{tenant_id}\x1f{customer_id}\x1f{content}")


class PostgresOrders:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def load(self, tenant_id: str, order_id: str) -> orders.State | None:
        row = await self._conn.fetchrow(_LOAD, tenant_id, order_id)
        if row is not None:
            return _order_from_row(tenant_id, order_id, row)
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

    async def save(self, order: orders.Order, entry: HistoryEntry) -> None:
        d = order.details
        shipping = address_id(order.tenant_id, d.customer_id, d.shipping_address)
        billing = address_id(order.tenant_id, d.customer_id, d.billing_address)
        key = (order.tenant_id, order.order_id)
        await self._conn.executemany(
            "INSERT INTO addresses (address_id, tenant_id, customer_id, name, lines, city,"
            " postal_code, country, phone, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (address_id) DO NOTHING",
            [
                (
                    aid,
                    order.tenant_id,
                    d.customer_id,
                    a.name,
                    list(a.lines),
                    a.city,
                    a.postal_code,
                    a.country,
                    a.phone,
                    a.email,
                )
                for aid, a in {shipping: d.shipping_address, billing: d.billing_address}.items()
            ],
        )
        await self._conn.execute(
            """
            INSERT INTO orders (tenant_id, order_id, customer_id, warehouse_id, status,
                                cancel_reason, version, voucher_code, shipping_address_id,
                                billing_address_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason,
                version = EXCLUDED.version, shipping_address_id = EXCLUDED.shipping_address_id,
                billing_address_id = EXCLUDED.billing_address_id, updated_at = now()
            """,
            *key,
            d.customer_id,
            d.warehouse_id,
            order.status.value,
            order.cancel_reason.value if order.cancel_reason else None,
            order.version,
            d.voucher_code,
            shipping,
            billing,
        )
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
            [i.sku for i in d.items],
            [i.quantity for i in d.items],
            [i.unit_price for i in d.items],
            [i.currency for i in d.items],
        )
        await self._conn.execute(
            """
            WITH freed AS (
                DELETE FROM order_vouchers WHERE tenant_id = $1 AND order_id = $2
            )
            INSERT INTO order_vouchers (tenant_id, voucher_code, order_id)
            SELECT $1, $3, $2 WHERE $3::text IS NOT NULL AND $4
            """,
            *key,
            d.voucher_code,
            order.status in HOLDS_VOUCHER,
        )
        await self._conn.execute(
            """
            INSERT INTO order_history (tenant_id, order_id, version, command_id, event_id,
                                       event_type, document, shipping_address_id,
                                       billing_address_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
            """,
            *key,
            entry.version,
            entry.command_id,
            entry.event_id,
            entry.event_type,
            entry.snapshot.decode(),
            shipping,
            billing,
        )

    async def delete(self, tombstone: orders.DeletedOrder) -> None:
        key = (tombstone.tenant_id, tombstone.order_id)
        # Items and the voucher row go with the order (ON DELETE CASCADE); address rows stay.
        await self._conn.execute("DELETE FROM orders WHERE tenant_id = $1 AND order_id = $2", *key)
        await self._conn.execute(
            "DELETE FROM order_history WHERE tenant_id = $1 AND order_id = $2", *key
        )
        await self._conn.execute(
            "INSERT INTO order_tombstones (tenant_id, order_id, last_version) VALUES ($1, $2, $3)",
            *key,
            tombstone.version,
        )


def _order_from_row(tenant_id: str, order_id: str, row: asyncpg.Record) -> orders.Order:
    items = tuple(
        orders.Item(i["sku"], i["quantity"], Decimal(i["unit_price"]), i["currency"])
        for i in json.loads(row["items"])
    )
    details = orders.OrderDetails(
        customer_id=row["customer_id"],
        warehouse_id=row["warehouse_id"],
        items=items,
        shipping_address=_address(row["shipping"]),
        billing_address=_address(row["billing"]),
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
    )


def _address(text: str) -> orders.Address:
    a = json.loads(text)
    return orders.Address(
        a["name"],
        tuple(a["lines"]),
        a["city"],
        a["postal_code"],
        a["country"],
        a["phone"],
        a["email"],
    )
