"""Customer orders in Postgres: order rows, item rows, vouchers, history, and encrypted records
of their personal data (see personal_data.py): no address value is stored in the clear."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

import asyncpg

from service.adapters.crypto import MasterKey
from service.adapters.personal_data import (
    PersonalDataVault,
    addresses_from,
    groups_of,
)
from service.app.ports import HistoryEntry, OrderSave
from service.domain import orders
from service.domain.orders import DataGroup
from service.domain.orders.rules import HOLDS_VOUCHER

RECORD_COLUMNS = {
    DataGroup.SHIPPING_ADDRESS: "shipping_record",
    DataGroup.BILLING_ADDRESS: "billing_record",
    DataGroup.CONTACT: "contact_record",
}

_LOAD = """
SELECT o.order_id, o.customer_id, o.warehouse_id, o.status, o.cancel_reason, o.version,
       o.voucher_code, o.shipping_record, o.billing_record, o.contact_record, o.redacted_groups,
       o.redaction_pending,
       (SELECT json_agg(json_build_object('sku', i.sku, 'quantity', i.quantity,
                                          'unit_price', i.unit_price::text,
                                          'currency', i.currency) ORDER BY i.line_no)
        FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.order_id
       )::text AS items
FROM orders o
WHERE o.tenant_id = $1 AND o.order_id = ANY($2::text[])
"""


class PostgresOrders:
    def __init__(self, conn: asyncpg.Connection, master: MasterKey) -> None:
        self._conn = conn
        self._vault = PersonalDataVault(conn, master)

    async def load(self, tenant_id: str, order_id: str) -> orders.State | None:
        found = await self.load_many(tenant_id, [order_id])
        if order_id in found:
            return found[order_id]
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

    async def load_many(self, tenant_id: str, order_ids: Sequence[str]) -> dict[str, orders.Order]:
        rows = await self._conn.fetch(_LOAD, tenant_id, list(order_ids))
        records = {
            row["order_id"]: {group: row[column] for group, column in RECORD_COLUMNS.items()}
            for row in rows
        }
        opened = await self._vault.read_many(tenant_id, records)
        return {
            row["order_id"]: _order_from_row(
                tenant_id, row["order_id"], row, *addresses_from(opened.get(row["order_id"], {}))
            )
            for row in rows
        }

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
        await self.save_many([OrderSave(order, history, previous)])

    async def save_many(self, saves: Sequence[OrderSave]) -> None:
        """Orders, history and shredded groups in a few statements for any number of orders;
        items, vouchers and new personal-data records order by order, only where they change."""
        if not saves:
            return
        kept = await self._kept_records(saves)
        records = {
            _key(save.order): await self._records_for(save, kept.get(_key(save.order), {}))
            for save in saves
        }
        await self._vault.destroy_many(
            [
                (save.order.tenant_id, save.order.order_id, group)
                for save in saves
                for group in save.order.redacted
                - (save.previous.redacted if save.previous else frozenset())
            ]
        )
        rows = [(save.order, records[_key(save.order)]) for save in saves]
        await self._conn.execute(
            """
            INSERT INTO orders (tenant_id, order_id, customer_id, warehouse_id, status,
                                cancel_reason, version, voucher_code, shipping_record,
                                billing_record, contact_record, redacted_groups,
                                redaction_pending)
            SELECT tenant_id, order_id, customer_id, warehouse_id, status, cancel_reason,
                   version, voucher_code, shipping_record, billing_record, contact_record,
                   string_to_array(redacted_groups, ','), string_to_array(redaction_pending, ',')
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                        $6::text[], $7::bigint[], $8::text[], $9::uuid[], $10::uuid[],
                        $11::uuid[], $12::text[], $13::text[])
                AS o(tenant_id, order_id, customer_id, warehouse_id, status, cancel_reason,
                     version, voucher_code, shipping_record, billing_record, contact_record,
                     redacted_groups, redaction_pending)
            ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason,
                version = EXCLUDED.version, shipping_record = EXCLUDED.shipping_record,
                billing_record = EXCLUDED.billing_record,
                contact_record = EXCLUDED.contact_record,
                redacted_groups = EXCLUDED.redacted_groups,
                redaction_pending = EXCLUDED.redaction_pending, updated_at = now()
            """,
            [o.tenant_id for o, _ in rows],
            [o.order_id for o, _ in rows],
            [o.details.customer_id for o, _ in rows],
            [o.details.warehouse_id for o, _ in rows],
            [o.status.value for o, _ in rows],
            [o.cancel_reason.value if o.cancel_reason else None for o, _ in rows],
            [o.version for o, _ in rows],
            [o.details.voucher_code for o, _ in rows],
            *([r[i] for _, r in rows] for i in range(len(RECORD_COLUMNS))),
            [",".join(sorted(g.value for g in o.redacted)) for o, _ in rows],
            [",".join(sorted(g.value for g in o.redaction_pending)) for o, _ in rows],
        )
        for save in saves:
            if save.previous is None or save.previous.details.items != save.order.details.items:
                await self._replace_items(save.order, new=save.previous is None)
            await self._move_voucher(save.order, save.previous)
        entries = [
            (save.order, entry, records[_key(save.order)])
            for save in saves
            for entry in save.history
        ]
        await self._conn.execute(
            """
            INSERT INTO order_history (tenant_id, order_id, version, command_id, event_id,
                                       event_type, document, shipping_record, billing_record,
                                       contact_record)
            SELECT tenant_id, order_id, version, command_id, event_id, event_type,
                   document::jsonb, shipping_record, billing_record, contact_record
            FROM unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[], $5::uuid[],
                        $6::text[], $7::text[], $8::uuid[], $9::uuid[], $10::uuid[])
                AS h(tenant_id, order_id, version, command_id, event_id, event_type, document,
                     shipping_record, billing_record, contact_record)
            """,
            [o.tenant_id for o, _, _ in entries],
            [o.order_id for o, _, _ in entries],
            [e.version for _, e, _ in entries],
            [e.command_id for _, e, _ in entries],
            [e.event_id for _, e, _ in entries],
            [e.event_type for _, e, _ in entries],
            [e.snapshot.decode() for _, e, _ in entries],
            *([r[i] for _, _, r in entries] for i in range(len(RECORD_COLUMNS))),
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

    async def _kept_records(
        self, saves: Sequence[OrderSave]
    ) -> dict[tuple[str, str], dict[DataGroup, uuid.UUID]]:
        """Per order that existed, the records of the groups unchanged since `previous`."""
        existing = [save for save in saves if save.previous is not None]
        if not existing:
            return {}
        rows = await self._conn.fetch(
            "SELECT o.tenant_id, o.order_id, o.shipping_record, o.billing_record,"
            " o.contact_record FROM orders o"
            " JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, order_id)"
            " USING (tenant_id, order_id)",
            [save.order.tenant_id for save in existing],
            [save.order.order_id for save in existing],
        )
        by_key = {(row["tenant_id"], row["order_id"]): row for row in rows}
        kept: dict[tuple[str, str], dict[DataGroup, uuid.UUID]] = {}
        for save in existing:
            row = by_key.get(_key(save.order))
            assert save.previous is not None
            if row is None:
                continue
            before, current = groups_of(save.previous.details), groups_of(save.order.details)
            kept[_key(save.order)] = {
                group: row[column]
                for group, column in RECORD_COLUMNS.items()
                if before.get(group) == current[group]
            }
        return kept

    async def _records_for(
        self, save: OrderSave, kept: Mapping[DataGroup, uuid.UUID]
    ) -> list[uuid.UUID]:
        """The record of each group: the current one while unchanged, else a new one."""
        order = save.order
        changed = {
            group: value for group, value in groups_of(order.details).items() if group not in kept
        }
        stored = await self._vault.store_many(
            order.tenant_id,
            order.order_id,
            order.details.customer_id,
            changed,
            new_order=save.previous is None,
        )
        return [kept.get(group) or stored[group] for group in RECORD_COLUMNS]


def _key(order: orders.Order) -> tuple[str, str]:
    return (order.tenant_id, order.order_id)


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
