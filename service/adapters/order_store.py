"""Customer orders in Postgres: order rows, item rows, vouchers, history, and encrypted records
of their personal data (see personal_data.py): no address value is stored in the clear."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from decimal import Decimal

import asyncpg
import orjson

from service.adapters.crypto import Keyring
from service.adapters.history import history_row
from service.adapters.locks import LockSpace, lock_name, lock_striped
from service.adapters.personal_data import (
    PersonalDataVault,
    SealRequest,
    addresses_from,
    destroy_dead_letters_of_customer,
    destroy_dead_letters_of_orders,
    groups_of,
)
from service.app.orders.ports import refuse_unopened_changes
from service.app.ports import Changes, DocumentKey, Version
from service.domain import orders
from service.domain.orders import DataGroup
from service.domain.values import frozen
from service.errors import PersonalDataNotOpenedError

RECORD_COLUMNS = {
    DataGroup.SHIPPING_ADDRESS: "shipping_record",
    DataGroup.BILLING_ADDRESS: "billing_record",
    DataGroup.CONTACT: "contact_record",
}

_LOAD = """
SELECT o.tenant_id, o.order_id, o.customer_id, o.warehouse_id, o.status, o.cancel_reason,
       o.version, o.voucher_code, o.shipping_record, o.billing_record, o.contact_record,
       o.redacted_groups, o.redaction_pending, o.items::text AS items
FROM orders o JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, order_id)
    USING (tenant_id, order_id)
"""


@frozen
class OrderSave:
    """A live order to write: the order it was loaded as (None when new) and its versions."""

    previous: orders.Order | None
    versions: Sequence[Version[orders.Order]]

    @property
    def order(self) -> orders.Order:
        return self.versions[-1].state


def _as_order(state: orders.State) -> orders.Order:
    assert isinstance(state, orders.Order), "a save holds live orders only"
    return state


def _split(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Pairs as the two arrays an `unnest($1::text[], $2::text[])` join takes."""
    return [first for first, _ in keys], [second for _, second in keys]


class PostgresOrders:
    def __init__(self, conn: asyncpg.Connection, master: Keyring) -> None:
        self._conn = conn
        self._vault = PersonalDataVault(conn, master)

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, orders.State]:
        """`personal_data` False: no key is unwrapped and nothing decrypted; both addresses of
        every order are `orders.SEALED`, which `save_many` never writes."""
        found: dict[DocumentKey, orders.State] = dict(await self._load_live(keys, personal_data))
        missing = [key for key in keys if key not in found]
        if missing:
            rows = await self._conn.fetch(
                "SELECT t.tenant_id, t.order_id, t.last_version, t.deleted_at"
                " FROM order_tombstones t JOIN unnest($1::text[], $2::text[])"
                " AS k(tenant_id, order_id) USING (tenant_id, order_id)",
                *_split(missing),
            )
            for row in rows:
                found[(row["tenant_id"], row["order_id"])] = orders.DeletedOrder(
                    row["tenant_id"], row["order_id"], row["last_version"], row["deleted_at"]
                )
        return found

    async def _load_live(
        self, keys: Sequence[DocumentKey], personal_data: bool
    ) -> dict[DocumentKey, orders.Order]:
        if not keys:
            return {}
        rows = await self._conn.fetch(_LOAD, *_split(keys))
        if not personal_data:
            return {
                (key := (row["tenant_id"], row["order_id"])): _order_from_row(
                    key, row, orders.SEALED, orders.SEALED
                )
                for row in rows
            }
        records = {
            (row["tenant_id"], row["order_id"]): {
                group: row[column] for group, column in RECORD_COLUMNS.items()
            }
            for row in rows
        }
        opened = await self._vault.read_many(records)
        loaded: dict[DocumentKey, orders.Order] = {}
        for row in rows:
            key = (row["tenant_id"], row["order_id"])
            loaded[key] = _order_from_row(key, row, *addresses_from(opened.get(key, {})))
        return loaded

    async def voucher_holders(
        self, vouchers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        # Held until commit, so orders racing for one voucher are decided one after the other.
        await lock_striped(
            self._conn, LockSpace.VOUCHERS, [lock_name(t, code) for t, code in vouchers]
        )
        if not vouchers:
            return {}
        rows = await self._conn.fetch(
            "SELECT v.tenant_id, v.voucher_code, v.order_id FROM order_vouchers v"
            " JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, voucher_code)"
            " USING (tenant_id, voucher_code)",
            *_split(vouchers),
        )
        return {(row["tenant_id"], row["voucher_code"]): row["order_id"] for row in rows}

    async def lock_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        # Serialises an erasure with writes of the customer's personal data; every caller holds
        # its order locks first, so the lock order is the same everywhere.
        await lock_striped(
            self._conn, LockSpace.CUSTOMERS, [lock_name(t, customer) for t, customer in customers]
        )

    async def erased_customers(self, customers: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        await self.lock_customers(customers)
        if not customers:
            return set()
        rows = await self._conn.fetch(
            "SELECT e.tenant_id, e.customer_id FROM erased_customers e"
            " JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, customer_id)"
            " USING (tenant_id, customer_id)",
            *_split(customers),
        )
        return {(row["tenant_id"], row["customer_id"]) for row in rows}

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT order_id FROM orders WHERE tenant_id = $1 AND customer_id = $2 ORDER BY 1",
            tenant_id,
            customer_id,
        )
        return [row["order_id"] for row in rows]

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        return await destroy_dead_letters_of_customer(self._conn, tenant_id, customer_id)

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

    async def save_many(self, changes: Changes[orders.State]) -> None:
        """The live orders with their versions, then the deleted ones."""
        refuse_unopened_changes(changes)  # before anything is written
        await self._save_live(
            [
                OrderSave(
                    _as_order(save.previous) if save.previous is not None else None,
                    [Version(_as_order(v.state), v.entry) for v in save.versions],
                )
                for save in changes.saves()
            ]
        )
        await self._delete(changes.deletions())

    async def _save_live(self, saves: Sequence[OrderSave]) -> None:
        """Orders, items, vouchers, history and personal-data records in a few statements for
        any number of orders: groups unchanged since `previous` keep their records, changed
        ones get new records, and newly redacted ones lose their keys."""
        if not saves:
            return
        records = await self._records(saves)
        erased = [
            (save, save.order.redacted - (save.previous.redacted if save.previous else frozenset()))
            for save in saves
        ]
        await self._vault.destroy_many(
            [(save.order.tenant_id, save.order.order_id, g) for save, new in erased for g in new]
        )
        # A dead letter holds the whole command as it arrived, every group in it: it goes with
        # the first group of its order that is erased.
        await destroy_dead_letters_of_orders(
            self._conn, [_key(save.order) for save, new in erased if new]
        )
        rows = [(save.order, records[(_key(save.order), save.order.version)]) for save in saves]
        await self._conn.execute(
            """
            INSERT INTO orders (tenant_id, order_id, customer_id, warehouse_id, status,
                                cancel_reason, version, voucher_code, shipping_record,
                                billing_record, contact_record, redacted_groups,
                                redaction_pending, items)
            SELECT tenant_id, order_id, customer_id, warehouse_id, status, cancel_reason,
                   version, voucher_code, shipping_record, billing_record, contact_record,
                   string_to_array(redacted_groups, ','), string_to_array(redaction_pending, ','),
                   items::jsonb
            FROM unnest($1::order_row[])
            ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason,
                items = EXCLUDED.items,
                version = EXCLUDED.version, shipping_record = EXCLUDED.shipping_record,
                billing_record = EXCLUDED.billing_record,
                contact_record = EXCLUDED.contact_record,
                redacted_groups = EXCLUDED.redacted_groups,
                redaction_pending = EXCLUDED.redaction_pending, updated_at = now()
            """,
            [
                (
                    o.tenant_id,
                    o.order_id,
                    o.details.customer_id,
                    o.details.warehouse_id,
                    o.status.value,
                    o.cancel_reason.value if o.cancel_reason else None,
                    o.version,
                    o.details.voucher_code,
                    *records,
                    ",".join(sorted(g.value for g in o.redacted)),
                    ",".join(sorted(g.value for g in o.redaction_pending)),
                    _items_json(o.details.items),
                )
                for o, records in rows
            ],
        )
        await self._move_vouchers(saves)
        entries = [
            (save.order, version.entry, records[(_key(save.order), version.state.version)])
            for save in saves
            for version in save.versions
        ]
        await self._conn.execute(
            """
            INSERT INTO order_history (tenant_id, order_id, version, command_id, event_id,
                                       event_type, document, shipping_record, billing_record,
                                       contact_record, actor_type, actor_id, actor_issuer)
            SELECT tenant_id, order_id, version, command_id, event_id, event_type,
                   document::jsonb, shipping_record, billing_record, contact_record,
                   actor_type, actor_id, actor_issuer
            FROM unnest($1::order_history_row[])
            """,
            [
                (o.tenant_id, o.order_id, *history_row(entry), *records)
                for o, entry, records in entries
            ],
        )

    async def _move_vouchers(self, saves: Sequence[OrderSave]) -> None:
        """A voucher row follows whether its order holds the voucher; untouched otherwise."""
        moved = [
            (save.order, orders.held_voucher(save.order), orders.held_voucher(save.previous))
            for save in saves
        ]
        freed = [_key(order) for order, holds, held in moved if held is not None and holds != held]
        taken = [
            (order, holds) for order, holds, held in moved if holds is not None and holds != held
        ]
        if freed:
            await self._conn.execute(
                "DELETE FROM order_vouchers v USING unnest($1::text[], $2::text[])"
                " AS k(tenant_id, order_id)"
                " WHERE v.tenant_id = k.tenant_id AND v.order_id = k.order_id",
                *_split(freed),
            )
        if taken:
            await self._conn.execute(
                "INSERT INTO order_vouchers (tenant_id, voucher_code, order_id)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                [order.tenant_id for order, _ in taken],
                [code for _, code in taken],
                [order.order_id for order, _ in taken],
            )

    async def _delete(self, tombstones: Sequence[orders.State]) -> None:
        """Remove the orders (their voucher rows go with them: ON DELETE CASCADE)
        and their history, crypto-shred their personal data, and leave their tombstones."""
        if not tombstones:
            return
        keys = [(t.tenant_id, t.order_id) for t in tombstones]
        for table in ("orders", "order_history"):
            await self._conn.execute(
                f"DELETE FROM {table} t USING unnest($1::text[], $2::text[])"
                " AS k(tenant_id, order_id)"
                " WHERE t.tenant_id = k.tenant_id AND t.order_id = k.order_id",
                *_split(keys),
            )
        await self._vault.destroy_orders(keys)
        await destroy_dead_letters_of_orders(self._conn, keys)
        await self._conn.execute(
            "INSERT INTO order_tombstones (tenant_id, order_id, last_version)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
            *_split(keys),
            [t.version for t in tombstones],
        )

    async def _records(
        self, saves: Sequence[OrderSave]
    ) -> dict[tuple[DocumentKey, int], list[uuid.UUID]]:
        """Per order and version, the record of each group: the one before while the group is
        unchanged, else a new one."""
        current = await self._current_records(saves)
        requests = []
        for save in saves:
            key = _key(save.order)
            if save.previous and save.previous.details.shipping_address is orders.SEALED:
                # Loaded sealed, kept so (refuse_unopened_changes): every group keeps its
                # record, and nothing is read from the stand-in.
                if key not in current:
                    raise PersonalDataNotOpenedError(key, "records")
                customer = save.order.details.customer_id
                requests += [SealRequest(*key, customer, {}, False) for _ in save.versions]
                continue
            before = groups_of(save.previous.details) if key in current and save.previous else {}
            for version in save.versions:
                values = groups_of(version.state.details)
                changed = {g: v for g, v in values.items() if before.get(g) != v}
                requests.append(
                    SealRequest(
                        *key, save.order.details.customer_id, changed, save.previous is None
                    )
                )
                before = values
        stored = iter(await self._vault.store_many(requests))
        records: dict[tuple[DocumentKey, int], list[uuid.UUID]] = {}
        for save in saves:
            key = _key(save.order)
            latest = dict(current.get(key, {}))
            for version in save.versions:
                latest.update(next(stored))
                records[(key, version.state.version)] = [latest[g] for g in RECORD_COLUMNS]
        return records

    async def _current_records(
        self, saves: Sequence[OrderSave]
    ) -> dict[DocumentKey, dict[DataGroup, uuid.UUID]]:
        """Per order that existed, the record of each group it holds now."""
        existing = [_key(save.order) for save in saves if save.previous is not None]
        if not existing:
            return {}
        rows = await self._conn.fetch(
            "SELECT o.tenant_id, o.order_id, o.shipping_record, o.billing_record,"
            " o.contact_record FROM orders o"
            " JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, order_id)"
            " USING (tenant_id, order_id)",
            *_split(existing),
        )
        return {
            (row["tenant_id"], row["order_id"]): {
                group: row[column] for group, column in RECORD_COLUMNS.items()
            }
            for row in rows
        }


def _key(order: orders.Order) -> tuple[str, str]:
    return (order.tenant_id, order.order_id)


def _items_json(items: Sequence[orders.Item]) -> str:
    """The `items` column: the items in line order, unit prices as the text they were decided
    with (Decimal's own, so an order loaded back holds the very values it was saved with)."""
    return orjson.dumps(
        [
            {
                "sku": item.sku,
                "quantity": item.quantity,
                "unit_price": str(item.unit_price),
                "currency": item.currency,
            }
            for item in items
        ]
    ).decode()


def _order_from_row(
    key: DocumentKey,
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
        *key,
        orders.Status(row["status"]),
        row["version"],
        details,
        orders.CancelReason(reason) if reason else None,
        frozenset(orders.DataGroup(g) for g in row["redacted_groups"]),
        frozenset(orders.DataGroup(g) for g in row["redaction_pending"]),
    )
