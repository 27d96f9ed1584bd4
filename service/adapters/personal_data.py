"""Encrypted personal data of customer orders: data keys per order and field group, records.

Nothing here stores a plaintext value: records hold AES-256-GCM ciphertext under a data key of
their order and field group, and data keys are stored wrapped by the master key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from service.adapters.crypto import Keyring, new_key, open_sealed, seal
from service.adapters.random_ids import random_uuid
from service.app.ports import DocumentKey
from service.domain import orders
from service.domain.orders import DataGroup
from service.domain.values import frozen


def groups_of(details: orders.OrderDetails) -> dict[DataGroup, dict[str, Any]]:
    """An order's personal data, split into the groups that are keyed (and erased) separately."""

    def location(a: orders.Address) -> dict[str, Any]:
        return {
            "name": a.name,
            "lines": list(a.lines),
            "city": a.city,
            "postal_code": a.postal_code,
            "country": a.country,
        }

    def contact(a: orders.Address) -> dict[str, Any]:
        return {"phone": a.phone, "email": a.email}

    return {
        DataGroup.SHIPPING_ADDRESS: location(details.shipping_address),
        DataGroup.BILLING_ADDRESS: location(details.billing_address),
        DataGroup.CONTACT: {
            "shipping": contact(details.shipping_address),
            "billing": contact(details.billing_address),
        },
    }


REDACTED = "[redacted]"
_REDACTED_LOCATION = {
    "name": REDACTED,
    "lines": [REDACTED],
    "city": REDACTED,
    "postal_code": REDACTED,
    "country": REDACTED,
}
_REDACTED_CONTACT = {"phone": REDACTED, "email": REDACTED}


def addresses_from(
    groups: Mapping[DataGroup, dict[str, Any]],
) -> tuple[orders.Address, orders.Address]:
    """The two addresses; a group whose key is destroyed reads as placeholders."""
    groups = {
        DataGroup.SHIPPING_ADDRESS: _REDACTED_LOCATION,
        DataGroup.BILLING_ADDRESS: _REDACTED_LOCATION,
        DataGroup.CONTACT: {"shipping": _REDACTED_CONTACT, "billing": _REDACTED_CONTACT},
        **groups,
    }
    contact = groups[DataGroup.CONTACT]

    def address(group: DataGroup, role: str) -> orders.Address:
        g = groups[group]
        c = contact[role]
        return orders.Address(
            g["name"],
            tuple(g["lines"]),
            g["city"],
            g["postal_code"],
            g["country"],
            c["phone"],
            c["email"],
        )

    return address(DataGroup.SHIPPING_ADDRESS, "shipping"), address(
        DataGroup.BILLING_ADDRESS, "billing"
    )


def _context(tenant_id: str, order_id: str, group: DataGroup, record_id: uuid.UUID) -> bytes:
    return "\x1f".join((tenant_id, order_id, group.value, str(record_id))).encode()


# A group's values are sealed as JSON. orjson writes and reads nearly all of them; the standard
# library takes the rest: a lone surrogate, which builds before the strict edge (commit 4cf21fa)
# accepted in an address and sealed as an escape, and which such an order keeps when it is
# sealed again.
def _plaintext(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _value(plaintext: bytes) -> Any:
    try:
        return orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        return json.loads(plaintext)


@frozen
class SealRequest:
    """Values of some groups of one order, each to be sealed in a new record."""

    tenant_id: str
    order_id: str
    customer_id: str
    values: Mapping[DataGroup, dict[str, Any]]
    new_order: bool = False
    """A new order has no keys yet (ids are never reused), so none are looked up."""


GroupKey = tuple[str, str, DataGroup]
"""(tenant, order, group): what one data key covers."""


class PersonalDataVault:
    """Seals and opens one transaction's personal-data records, for any number of orders in a
    few statements."""

    def __init__(self, conn: asyncpg.Connection, keys: Keyring) -> None:
        self._conn = conn
        self._master_keys = keys
        self._keys: dict[GroupKey, tuple[uuid.UUID, bytes]] = {}

    async def store_many(self, requests: Sequence[SealRequest]) -> list[dict[DataGroup, uuid.UUID]]:
        """Per request, a new record for each of its groups, sealed under its order's key for
        that group (created where there is none yet): three statements at most, however many
        orders and versions."""
        stored: list[dict[DataGroup, uuid.UUID]] = [
            {group: random_uuid() for group in request.values} for request in requests
        ]
        rows = [
            (request, group, value, records[group])
            for request, records in zip(requests, stored, strict=True)
            for group, value in request.values.items()
        ]
        if not rows:
            return stored
        keys = await self._data_keys(requests)
        await self._conn.execute(
            "INSERT INTO personal_data (record_id, tenant_id, order_id, field_group, key_id,"
            " ciphertext)"
            " SELECT * FROM unnest($1::personal_data_row[])",
            [
                (
                    record,
                    r.tenant_id,
                    r.order_id,
                    group.value,
                    key_id,
                    seal(key, _plaintext(value), _context(r.tenant_id, r.order_id, group, record)),
                )
                for r, group, value, record in rows
                for key_id, key in [keys[(r.tenant_id, r.order_id, group)]]
            ],
        )
        return stored

    async def read_many(
        self, records: Mapping[DocumentKey, Mapping[DataGroup, uuid.UUID]]
    ) -> dict[DocumentKey, dict[DataGroup, dict[str, Any]]]:
        """Per order, the values of its groups' records; a group whose key is destroyed is
        absent."""
        rows = await self._conn.fetch(
            "SELECT p.tenant_id, p.order_id, p.record_id, p.field_group, p.ciphertext, k.key_id,"
            " k.wrapped_key, k.master_key_id"
            " FROM personal_data p JOIN data_keys k ON k.key_id = p.key_id"
            " WHERE p.record_id = ANY($1::uuid[])",
            [record for groups in records.values() for record in groups.values()],
        )
        opened: dict[DocumentKey, dict[DataGroup, dict[str, Any]]] = {}
        for row in rows:
            group = DataGroup(row["field_group"])
            key = _unwrapped(self._master_keys, row)
            context = _context(row["tenant_id"], row["order_id"], group, row["record_id"])
            value = _value(open_sealed(key, row["ciphertext"], context))
            opened.setdefault((row["tenant_id"], row["order_id"]), {})[group] = value
        return opened

    async def destroy_many(self, groups: Sequence[GroupKey]) -> None:
        """Crypto-shred (tenant, order, group) triples: every record of every version becomes
        unreadable at once. The ciphertext is cleared too, so nothing of it is left to attack
        later."""
        if not groups:
            return
        arguments = (
            [tenant for tenant, _, _ in groups],
            [order for _, order, _ in groups],
            [group.value for _, _, group in groups],
        )
        await self._conn.execute(
            "DELETE FROM data_keys k USING unnest($1::text[], $2::text[], $3::text[])"
            " AS g(tenant_id, order_id, field_group) WHERE k.tenant_id = g.tenant_id"
            " AND k.order_id = g.order_id AND k.field_group = g.field_group",
            *arguments,
        )
        await self._conn.execute(
            "UPDATE personal_data p SET ciphertext = NULL"
            " FROM unnest($1::text[], $2::text[], $3::text[])"
            " AS g(tenant_id, order_id, field_group)"
            " WHERE p.tenant_id = g.tenant_id AND p.order_id = g.order_id"
            " AND p.field_group = g.field_group",
            *arguments,
        )
        for group in groups:
            self._keys.pop(group, None)

    async def destroy_orders(self, orders_gone: Sequence[DocumentKey]) -> None:
        """Crypto-shred every group of the orders: keys first, then the ciphertext."""
        if not orders_gone:
            return
        for table in ("data_keys", "personal_data"):
            await self._conn.execute(
                f"DELETE FROM {table} t USING unnest($1::text[], $2::text[])"
                " AS g(tenant_id, order_id)"
                " WHERE t.tenant_id = g.tenant_id AND t.order_id = g.order_id",
                [tenant for tenant, _ in orders_gone],
                [order for _, order in orders_gone],
            )
        gone = set(orders_gone)
        for group in [group for group in self._keys if group[:2] in gone]:
            del self._keys[group]

    async def _data_keys(
        self, requests: Sequence[SealRequest]
    ) -> dict[GroupKey, tuple[uuid.UUID, bytes]]:
        """Each requested group's data key, made and stored wrapped where there is none."""
        wanted = {(r.tenant_id, r.order_id, group): r for r in requests for group in r.values}
        found = {group: self._keys[group] for group in wanted if group in self._keys}
        look_up = [group for group, r in wanted.items() if group not in found and not r.new_order]
        if look_up:
            rows = await self._conn.fetch(
                "SELECT k.tenant_id, k.order_id, k.field_group, k.key_id, k.wrapped_key,"
                " k.master_key_id FROM data_keys k JOIN unnest($1::text[], $2::text[], $3::text[])"
                " AS g(tenant_id, order_id, field_group)"
                " USING (tenant_id, order_id, field_group)",
                [t for t, _, _ in look_up],
                [o for _, o, _ in look_up],
                [g.value for _, _, g in look_up],
            )
            for row in rows:
                group_key = (row["tenant_id"], row["order_id"], DataGroup(row["field_group"]))
                found[group_key] = (row["key_id"], _unwrapped(self._master_keys, row))
        missing = [group for group in wanted if group not in found]
        if missing:
            made = {group: (random_uuid(), new_key()) for group in missing}
            master = self._master_keys.current
            await self._conn.execute(
                "INSERT INTO data_keys (key_id, tenant_id, order_id, customer_id, field_group,"
                " wrapped_key, master_key_id)"
                " SELECT key_id, tenant_id, order_id, customer_id, field_group, wrapped_key, $1"
                " FROM unnest($2::data_key_row[])",
                master.key_id,
                [
                    (
                        key_id,
                        tenant_id,
                        order_id,
                        wanted[(tenant_id, order_id, group)].customer_id,
                        group.value,
                        master.wrap(key, key_id),
                    )
                    for (tenant_id, order_id, group), (key_id, key) in made.items()
                ],
            )
            found.update(made)
        self._keys.update(found)
        return found


WRAPPED_KEY_TABLES = ("data_keys", "dead_letter_keys", "signing_keys")
"""Every table of keys wrapped by a master key: a rotation re-wraps them all."""
REWRAP_CHUNK = 500


async def rewrap_chunk(conn: asyncpg.Connection, keys: Keyring, table: str) -> int:
    """Re-wrap up to REWRAP_CHUNK keys of `table` that the current master key did not wrap, in
    one short transaction; returns how many. Rows a running transaction holds are skipped (the
    next chunk finds them), so the pipeline never waits on a rotation."""
    assert table in WRAPPED_KEY_TABLES
    current = keys.current
    async with conn.transaction():
        rows = await conn.fetch(
            f"SELECT key_id, wrapped_key, master_key_id FROM {table}"
            f" WHERE master_key_id <> $1 LIMIT {REWRAP_CHUNK} FOR UPDATE SKIP LOCKED",
            current.key_id,
        )
        await conn.execute(
            f"UPDATE {table} t SET wrapped_key = r.wrapped_key, master_key_id = $3"
            " FROM unnest($1::uuid[], $2::bytea[]) AS r(key_id, wrapped_key)"
            " WHERE t.key_id = r.key_id",
            [row["key_id"] for row in rows],
            [current.wrap(_unwrapped(keys, row), row["key_id"]) for row in rows],
            current.key_id,
        )
    return len(rows)


async def keys_not_wrapped_by_current(conn: asyncpg.Connection, keys: Keyring) -> dict[str, int]:
    """Per table, how many keys another master key than the current one wrapped."""
    current = keys.current.key_id
    return {
        table: await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE master_key_id <> $1", current
        )
        for table in WRAPPED_KEY_TABLES
    }


def _unwrapped(keys: Keyring, row: asyncpg.Record) -> bytes:
    """A wrapped key of `row` (key_id, wrapped_key, master_key_id), opened by the master key
    that wrapped it."""
    return keys.get(row["master_key_id"]).unwrap(row["wrapped_key"], row["key_id"])


async def seal_dead_letter(
    conn: asyncpg.Connection,
    keys: Keyring,
    raw: bytes,
    *,
    tenant_id: str | None,
    customer_id: str | None,
    order_id: str | None,
    retention_hours: float,
) -> tuple[uuid.UUID, bytes]:
    """Seal a dead letter under a fresh data key kept for `retention_hours`: (key id, sealed).
    The key is tied to the order the letter names and to its customer: the one the letter names,
    else the customer of the stored order, so that erasing either destroys it."""
    key_id, key, master = random_uuid(), new_key(), keys.current
    # A letter about a customer who was erased, or an order that was deleted or fully erased,
    # is sealed all the same but its key is never kept: it is gone from the start.
    await conn.execute(
        """
        WITH letter AS (
            SELECT $2::text AS tenant_id, $4::text AS order_id,
                   coalesce($3::text, (SELECT customer_id FROM orders
                                       WHERE tenant_id = $2 AND order_id = $4)) AS customer_id
        )
        INSERT INTO dead_letter_keys (key_id, tenant_id, customer_id, order_id, wrapped_key,
                                      master_key_id, expires_at)
        SELECT $1, l.tenant_id, l.customer_id, l.order_id, $5, $6,
               now() + make_interval(hours => $7)
        FROM letter l
        WHERE NOT EXISTS (SELECT 1 FROM erased_customers e
                          WHERE e.tenant_id = l.tenant_id AND e.customer_id = l.customer_id)
          AND NOT EXISTS (SELECT 1 FROM order_tombstones t
                          WHERE t.tenant_id = l.tenant_id AND t.order_id = l.order_id)
          AND NOT EXISTS (SELECT 1 FROM orders o
                          WHERE o.tenant_id = l.tenant_id AND o.order_id = l.order_id
                            AND cardinality(o.redacted_groups) >= $8)
        """,
        key_id,
        tenant_id,
        customer_id,
        order_id,
        master.wrap(key, key_id),
        master.key_id,
        retention_hours,
        len(DataGroup),
    )
    return key_id, seal(key, raw, b"dead-letter:" + key_id.bytes)


async def destroy_dead_letters_of_customer(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str
) -> int:
    """Destroy the keys of the dead letters about this customer or any order of theirs; returns
    how many. A letter whose tenant could not be read goes too: erring towards erasure."""
    status: str = await conn.execute(
        f"DELETE FROM dead_letter_keys WHERE {_LETTERS_OF_CUSTOMER}", tenant_id, customer_id
    )
    return int(status.rsplit(" ", 1)[-1])


async def count_dead_letters_of_customer(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str
) -> int:
    """How many letters destroy_dead_letters_of_customer would destroy (for previews)."""
    found: int = await conn.fetchval(
        f"SELECT count(*) FROM dead_letter_keys WHERE {_LETTERS_OF_CUSTOMER}",
        tenant_id,
        customer_id,
    )
    return found


_LETTERS_OF_CUSTOMER = (
    "(tenant_id = $1 OR tenant_id IS NULL) AND (customer_id = $2 OR order_id = $2 OR order_id IN"
    " (SELECT order_id FROM orders WHERE tenant_id = $1 AND customer_id = $2))"
)
"""The letters about a customer ($2 in tenant $1) or any order of theirs. A letter known only by
its Kafka key (its body unreadable) has that key as its order id, which for customer.redact is
the customer's id: matched too, erring towards erasure."""


async def destroy_dead_letters_of_orders(
    conn: asyncpg.Connection, erased: Sequence[DocumentKey]
) -> None:
    """Destroy the keys of the dead letters about these orders (letters of an unreadable tenant
    that name one of the orders included)."""
    if erased:
        await conn.execute(
            "DELETE FROM dead_letter_keys k USING unnest($1::text[], $2::text[])"
            " AS g(tenant_id, order_id)"
            " WHERE k.order_id = g.order_id AND (k.tenant_id = g.tenant_id OR k.tenant_id IS NULL)",
            [tenant for tenant, _ in erased],
            [order for _, order in erased],
        )


async def open_dead_letter(
    conn: asyncpg.Connection, keys: Keyring, key_id: uuid.UUID, sealed: bytes
) -> bytes | None:
    """The raw dead letter, or None once its key is destroyed (expired or erased)."""
    row = await conn.fetchrow(
        "SELECT key_id, wrapped_key, master_key_id FROM dead_letter_keys WHERE key_id = $1",
        key_id,
    )
    if row is None:
        return None
    return open_sealed(_unwrapped(keys, row), sealed, b"dead-letter:" + key_id.bytes)
