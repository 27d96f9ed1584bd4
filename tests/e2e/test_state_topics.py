"""The compacted state topics on the real servers.

Ten thousand commands of both families (creates, status changes, receipts, refusals, deletes;
customer orders carrying personal data full of canaries, an order.redact erased at once, one
scheduled and run later, a customer.redact) go through the service. Then a reader that knows
nothing but the contract (examples.state_board) bootstraps from the state topics and must hold
exactly what Postgres holds for every live document, field by field, with deleted and erased
documents absent; the state topics hold no canary; every document's records there are its
states in version order, ending in one tombstone for each deleted or erased one. A second
board, bootstrapped half way, follows the events (and states) to the same end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contract_tools.conformance import assert_conforms
from contracts import orders as o
from contracts import purchase_orders as po
from contracts.state import state_key
from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from examples.state_board.board import Board, Entry
from examples.state_board.reading import bootstrap, follow
from service.adapters.kafka_connection import KafkaConnection
from service.settings import Settings
from tests.support import (
    change_status,
    create,
    create_order,
    create_topics,
    delete,
    delete_order,
    eventually,
    order_command,
    order_status,
    receipt,
    redact_customer,
    running_service,
)
from tests.transfers.family import transfer_family

TENANT = "tenant-a"
COMMANDS = 10_000
PURCHASE_ORDER_COUNT = 2300
ORDER_COUNT = 900
MARKER = "zq9canary"
"""In every personal value but phones: a leak of any of them, or of a part, contains it."""
PHONE = re.compile(rb"\+44 7\d{9}")


@dataclass
class Workload:
    """Commands per phase, as (family, Kafka key, body); each phase waits for the one before,
    since a customer.redact (keyed by its customer) shares no partition with the orders it
    erases. The first phase is split in two halves at the end (see `workload`)."""

    phases: list[list[tuple[str, str, dict[str, Any]]]] = field(default_factory=lambda: [[]])
    deleted: set[tuple[str, str]] = field(default_factory=set)
    """(family, document id) of the documents deleted."""
    erased: set[str] = field(default_factory=set)
    """Order ids whose personal data is erased by the end."""

    def add(self, body: dict[str, Any]) -> None:
        family = ORDERS if "order_id" in body or "customer_id" in body else PURCHASE_ORDERS
        key = body.get("purchase_order_id") or body.get("order_id") or body["customer_id"]
        self.phases[-1].append((family, str(key), body))

    def next_phase(self) -> None:
        self.phases.append([])

    def count(self) -> int:
        return sum(map(len, self.phases))


def personal(i: int) -> dict[str, Any]:
    def address(part: str) -> dict[str, Any]:
        return {
            "name": f"{MARKER}{i}{part} Name",
            "lines": [f"{i} {MARKER} Street {part}"],
            "city": f"{MARKER}{i}city",
            "postal_code": f"{MARKER}{i}",
            "country": "GB",
            "phone": f"+44 7{i:09d}",
            "email": f"{MARKER}{i}{part}@example.org",
        }

    return {"shipping_address": address("ship"), "billing_address": address("bill")}


def new_order(w: Workload, order_id: str, i: int, customer_id: str) -> None:
    w.add(create_order(order_id, details={"customer_id": customer_id, **personal(i)}))


def workload() -> Workload:
    w = Workload()
    closed = []
    for i in range(PURCHASE_ORDER_COUNT):
        po_id = f"PO-{i}"
        w.add(create(po_id))
        group = i % 10
        if group in (0, 1):  # drafts: half of one group deleted, the rest refused a jump
            if i % 20 == 0:
                w.add(delete(po_id))
                w.deleted.add((PURCHASE_ORDERS, po_id))
            else:
                w.add(change_status(po_id, "received"))
            continue
        w.add(change_status(po_id, "open"))
        if group in (2, 3):
            w.add(change_status(po_id, "cancelled", "supplier out of stock"))
            if group == 2:
                w.add(delete(po_id))
                w.deleted.add((PURCHASE_ORDERS, po_id))
        elif group == 9:  # one command, two events: receiving, then the receipt
            w.add(receipt(po_id, f"RCV-{i}", **{"WIDGET-001": 40}))
        else:
            w.add(change_status(po_id, "receiving"))
            if group in (7, 8):
                w.add(change_status(po_id, "received"))
            if group == 8:
                w.add(change_status(po_id, "closed"))
                closed.append(po_id)

    steps = {1: ["cancelled"], 2: ["ready"], 3: ["ready", "fulfilled"]}
    steps |= {4: ["ready", "fulfilled", "sent"], 5: ["ready", "fulfilled", "sent", "delivered"]}
    for i in range(ORDER_COUNT):
        order_id = f"O-{i}"
        new_order(w, order_id, i, f"CUST-{i % 300}")
        for status in steps.get(i % 6, []):
            w.add(order_status(order_id, status, "customer" if status == "cancelled" else None))
    base = ORDER_COUNT
    new_order(w, "O-DELETED", base, "CUST-X")
    w.add(delete_order("O-DELETED"))
    w.deleted.add((ORDERS, "O-DELETED"))
    new_order(w, "O-ERASED-NOW", base + 1, "CUST-X")
    for status in ("ready", "fulfilled", "sent"):
        w.add(order_status("O-ERASED-NOW", status))
    new_order(w, "O-ERASED-LATER", base + 2, "CUST-X")
    new_order(w, "E-1", base + 3, "CUST-ERASED")
    for status in ("ready", "fulfilled", "sent", "delivered"):
        w.add(order_status("E-1", status))
    new_order(w, "E-2", base + 4, "CUST-ERASED")
    w.add(order_status("E-2", "ready"))
    new_order(w, "E-3", base + 5, "CUST-ERASED")
    w.add(order_status("E-3", "cancelled", "customer"))

    w.next_phase()  # erasures, now that their orders are where they should be
    w.add(order_command("order.redact", "O-ERASED-NOW", {}))  # sent: erased at once
    w.add(order_command("order.redact", "O-ERASED-LATER", {}))  # placed: scheduled
    w.add(redact_customer("CUST-ERASED"))  # E-1, E-3 at once; E-2 scheduled
    w.erased |= {"O-ERASED-NOW", "O-ERASED-LATER", "E-1", "E-2", "E-3"}

    w.next_phase()  # after the erasures: scheduled ones run; an erased order changes again
    w.add(order_status("O-ERASED-NOW", "delivered"))
    w.add(order_status("O-ERASED-LATER", "cancelled", "customer"))
    w.add(order_status("E-2", "fulfilled"))
    w.add(order_status("E-2", "sent"))
    # Ten thousand in all: the rest are refusals (a closed order is terminal), which change
    # nothing and so publish no state.
    filler = COMMANDS - w.count()
    assert 0 <= filler <= 5 * len(closed)
    for n in range(filler):
        w.phases[0].append(
            (
                PURCHASE_ORDERS,
                closed[n % len(closed)],
                change_status(closed[n % len(closed)], "open"),
            )
        )
    assert w.count() == COMMANDS
    # Split in two, so that a board can start in the middle of it all.
    first = w.phases[0]
    w.phases[0:1] = [first[: len(first) // 2], first[len(first) // 2 :]]
    return w


async def produce(settings: Settings, sends: list[tuple[str, str, dict[str, Any]]]) -> None:
    """In bulk: sent without waiting for each, so they stream; one key's stay in order."""
    topics = {
        f: DocumentTopics.for_family(f, settings.topic_prefix) for f in (PURCHASE_ORDERS, ORDERS)
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                topics[family].commands, json.dumps(body).encode(), key=key.encode()
            )
            for family, key, body in sends
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def processed(db: asyncpg.Connection, commands: int) -> None:
    async def done() -> bool:
        claimed = await db.fetchval("SELECT count(*) FROM inbox")
        return bool(claimed >= commands and await db.fetchval("SELECT count(*) FROM outbox") == 0)

    await eventually(done, timeout=240, what=f"{commands} commands decided and published")


@contextlib.asynccontextmanager
async def consumer(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


@dataclass(frozen=True)
class Raw:
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def read_everything(settings: Settings, topics: list[str]) -> dict[str, list[Raw]]:
    """Every record of the topics up to their ends, per topic, in offset order per partition
    (the embedded broker never compacts, so this is every state ever published)."""
    found: dict[str, list[Raw]] = defaultdict(list)
    async with consumer(settings) as reader:
        await reader.topics()
        partitions = [
            TopicPartition(t, p) for t in topics for p in reader.partitions_for_topic(t) or ()
        ]
        ends = await reader.end_offsets(partitions)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        unread = {tp for tp in partitions if await reader.position(tp) < ends[tp]}
        while unread:
            for tp, records in (await reader.getmany(*unread, timeout_ms=1000)).items():
                found[tp.topic] += [Raw(r.key or b"", r.value, tuple(r.headers)) for r in records]
            unread = {tp for tp in unread if await reader.position(tp) < ends[tp]}
    return found


async def cleanup_policies(settings: Settings, topics: list[str]) -> dict[str, str | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        )
    finally:
        await admin.close()
    return {
        name: next((e[1] for e in entries if e[0] == "cleanup.policy"), None)
        for response in responses
        for _, _, _, name, entries in response.resources
    }


async def purchase_orders_in_postgres(db: asyncpg.Connection) -> dict[str, Entry]:
    rows = await db.fetch(
        "SELECT d.tenant_id, d.document_id, d.version, d.status, d.document::text AS document,"
        " h.event_id, h.event_type"
        " FROM documents d JOIN document_history h USING (kind, tenant_id, document_id, version)"
        " WHERE d.kind = $1",
        PURCHASE_ORDERS,
    )
    held = {}
    for row in rows:
        snapshot = po.PurchaseOrderSnapshot.model_validate_json(row["document"])
        assert snapshot.status == row["status"]
        held[state_key(row["tenant_id"], row["document_id"])] = Entry(
            row["tenant_id"], row["document_id"], row["version"], row["event_type"], snapshot
        )
    return held


async def orders_in_postgres(db: asyncpg.Connection) -> tuple[dict[str, Entry], set[str]]:
    """Live orders nothing of which was erased, from the order tables' columns (not from a
    stored snapshot); and the ids of those with erased data."""
    rows = await db.fetch(
        "SELECT o.tenant_id, o.order_id, o.customer_id, o.warehouse_id, o.status, o.version,"
        " o.voucher_code, o.redacted_groups, h.event_type"
        " FROM orders o JOIN order_history h USING (tenant_id, order_id, version)"
    )
    items: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for item in await db.fetch("SELECT * FROM order_items ORDER BY tenant_id, order_id, line_no"):
        items[(item["tenant_id"], item["order_id"])].append(item)
    held, erased = {}, set()
    for row in rows:
        if row["redacted_groups"]:
            erased.add(row["order_id"])
            continue
        lines = items[(row["tenant_id"], row["order_id"])]
        snapshot = o.OrderSnapshot(
            customer_id=row["customer_id"],
            warehouse_id=row["warehouse_id"],
            status=o.OrderStatus(row["status"]),
            items=[
                o.OrderItem(
                    sku=i["sku"],
                    quantity=i["quantity"],
                    unit_price=i["unit_price"],
                    currency=i["currency"],
                )
                for i in lines
            ],
            total=sum((i["unit_price"] * i["quantity"] for i in lines), Decimal(0)),
            currency=lines[0]["currency"],
            voucher_code=row["voucher_code"],
        )
        held[state_key(row["tenant_id"], row["order_id"])] = Entry(
            row["tenant_id"], row["order_id"], row["version"], row["event_type"], snapshot
        )
    return held, erased


def assert_same(board: dict[str, Entry], postgres: dict[str, Entry], what: str) -> None:
    assert set(board) == set(postgres), (
        f"{what}: only on the board {sorted(set(board) - set(postgres))[:5]},"
        f" only in Postgres {sorted(set(postgres) - set(board))[:5]}"
    )
    for key, expected in postgres.items():
        got = board[key]
        assert (got.tenant_id, got.document_id, got.version, got.event_type) == (
            expected.tenant_id,
            expected.document_id,
            expected.version,
            expected.event_type,
        ), key
        # Every field of the snapshot, compared as the contract reads it.
        assert got.snapshot.model_dump() == expected.snapshot.model_dump(), key


async def test_state_topics_rebuild_what_postgres_holds_and_never_hold_personal_data(
    settings: Settings, db: asyncpg.Connection
) -> None:
    w = workload()
    families = {
        f: DocumentTopics.for_family(f, settings.topic_prefix) for f in (PURCHASE_ORDERS, ORDERS)
    }
    state_topics = [t.state for t in families.values()]
    following = Board()
    stop = asyncio.Event()
    sent = 0
    async with running_service(settings), consumer(settings) as follower:
        for phase_number, phase in enumerate(w.phases):
            if phase_number == 1:
                # Half way: a board that bootstraps now, then follows events and states.
                start = await bootstrap(follower, following, families)
                follow_task = asyncio.create_task(
                    follow(follower, following, families, start, stop)
                )
            await produce(settings, phase)
            sent += len(phase)
            await processed(db, sent)
        po_held = await purchase_orders_in_postgres(db)
        orders_held, erased = await orders_in_postgres(db)

        async def caught_up() -> bool:
            return _same(following.documents(PURCHASE_ORDERS), po_held) and _same(
                following.documents(ORDERS), orders_held
            )

        try:
            await eventually(caught_up, timeout=60, what="the following board caught up")
        finally:
            stop.set()
            await follow_task

    # What the workload meant to do, it did (so the checks below check something).
    assert erased == w.erased
    deleted = await db.fetch("SELECT kind, document_id FROM document_tombstones")
    order_deletions = await db.fetch("SELECT order_id FROM order_tombstones")
    assert {(r["kind"], r["document_id"]) for r in deleted} | {
        (ORDERS, r["order_id"]) for r in order_deletions
    } == w.deleted
    assert len(po_held) + len(orders_held) > 2500

    assert await cleanup_policies(settings, state_topics) == dict.fromkeys(state_topics, "compact")

    # (a) A board started now, from the state topics alone, holds exactly what Postgres holds.
    board = Board()
    async with consumer(settings) as reader:
        await bootstrap(reader, board, families)
    assert board.skipped == 0
    assert_same(board.documents(PURCHASE_ORDERS), po_held, "purchase orders")
    assert_same(board.documents(ORDERS), orders_held, "customer orders")
    # ... and so does the board that followed the events from half way.
    assert_same(following.documents(PURCHASE_ORDERS), po_held, "purchase orders (followed)")
    assert_same(following.documents(ORDERS), orders_held, "customer orders (followed)")

    # (b) No personal data anywhere on the state topics: keys, values, headers.
    records = await read_everything(settings, state_topics)
    blob = b"\n".join(
        b"\n".join([r.key, r.value or b"", *(v for _, v in r.headers)])
        for topic in state_topics
        for r in records[topic]
    )
    assert len(blob) > 1_000_000
    assert MARKER.encode() not in blob.lower()
    assert not PHONE.findall(blob)

    # (c) Per document: its states in version order, one per version, and after a deletion
    # or an erasure exactly one tombstone, last.
    for family, topic in (
        (PURCHASE_ORDERS, families[PURCHASE_ORDERS].state),
        (ORDERS, families[ORDERS].state),
    ):
        by_key: dict[str, list[Raw]] = defaultdict(list)
        for record in records[topic]:
            by_key[record.key.decode()].append(record)
        held = po_held if family == PURCHASE_ORDERS else orders_held
        removed = {state_key(TENANT, d) for f, d in w.deleted if f == family}
        if family == ORDERS:
            removed |= {state_key(TENANT, d) for d in w.erased}
        assert set(by_key) == set(held) | removed
        for key, sequence in by_key.items():
            values = [r.value for r in sequence]
            states = [json.loads(v) for v in values if v is not None]
            versions = [s["version"] for s in states]
            assert versions == list(range(1, len(versions) + 1)), key
            if key in removed:
                assert values[-1] is None, f"{key}: no tombstone last"
                assert values.count(None) == 1, key
            else:
                assert None not in values, key
                assert versions[-1] == held[key].version, key
        for record in records[topic][:100]:
            assert_conforms(record.value, topic=topic)
    # The scheduled erasures: their orders were shown until the redaction ran, not after.
    later = [
        json.loads(r.value)
        for r in records[families[ORDERS].state]
        if r.key == b"tenant-a/E-2" and r.value
    ]
    assert [s["event_type"] for s in later][-1] == "order.status_changed"
    assert later[-1]["snapshot"]["status"] == "sent"


def _same(board: dict[str, Entry], postgres: dict[str, Entry]) -> bool:
    try:
        assert_same(board, postgres, "")
    except AssertionError:
        return False
    return True


async def test_a_family_with_no_state_rules_gets_its_compacted_topic_and_keeps_it_empty(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """A family registered through EXTRA_FAMILIES (tests/transfers/) says nothing about its
    state: the service still creates its compacted topic, runs it as before, and leaves it
    empty."""
    settings = settings.model_copy(
        update={"extra_families": ["tests.transfers.family:transfer_family"]}
    )
    topics = transfer_family(settings.topic_prefix).topics
    request = {
        "command_id": str(uuid.uuid4()),
        "type": "transfer.request",
        "tenant_id": TENANT,
        "transfer_id": "T-1",
        "payload": {
            "sku": "SKU-1",
            "quantity": 5,
            "from_warehouse_id": "WH-1",
            "to_warehouse_id": "WH-2",
        },
    }
    async with running_service(settings):
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topics.commands, json.dumps(request).encode(), key=b"T-1")
        finally:
            await producer.stop()
        await processed(db, 1)
    assert await db.fetchval("SELECT version FROM documents WHERE kind = 'transfers'") == 1
    assert await cleanup_policies(settings, [topics.state]) == {topics.state: "compact"}
    records = await read_everything(settings, [topics.events, topics.state])
    assert [json.loads(r.value or b"")["type"] for r in records[topics.events]] == [
        "transfer.requested"
    ]
    assert records[topics.state] == []


async def test_a_state_topic_that_exists_without_compaction_is_reported_not_changed(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    connection = KafkaConnection(settings.kafka_bootstrap_servers)
    state = DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix).state
    fresh = DocumentTopics.for_family(ORDERS, settings.topic_prefix).state
    await create_topics(connection, [state], 1)  # as an operator might have, by mistake
    with caplog.at_level(logging.WARNING, logger="service.adapters.kafka"):
        check = await create_topics(connection, [state, fresh], 1, [state, fresh])
    assert check.created == (fresh,)
    assert check.differences == {state: ["cleanup.policy=delete, settings say compact"]}
    [warning] = [r.getMessage() for r in caplog.records if state in r.getMessage()]
    assert warning == (
        f"topic {state} differs from the settings (left as it is):"
        " cleanup.policy=delete, settings say compact"
    )
    policies = await cleanup_policies(settings, [state, fresh])
    assert policies[state] == "delete"
    assert policies[fresh] == "compact"
