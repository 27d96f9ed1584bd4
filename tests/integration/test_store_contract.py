"""One contract for every store: the in-memory store and Postgres pass the same tests, so the
processor's unit tests on the first say something about the second.

What only Postgres can show (concurrent claims waiting for each other, locks, the WAL, sealing
with real keys) stays in the other integration tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.database import create_pool
from service.adapters.memory_store import MemoryStore
from service.adapters.preview_store import WriteInPreviewError
from service.adapters.unit_of_work import PostgresStore
from service.app.orders.ports import order_repository
from service.app.ports import (
    Answer,
    Changes,
    Claim,
    HistoryEntry,
    OutboxMessage,
    Outcome,
    Store,
    Version,
)
from service.app.purchase_orders.family import purchase_order_family
from service.app.wire_json import wire_json
from service.domain import purchase_orders as po
from service.errors import UnansweredClaimError, VersionSequenceError

KIND = purchase_order_family().kind


@dataclass
class Harness:
    """A store and a way to see what it committed."""

    store: Store
    conn: asyncpg.Connection | None

    async def outbox(self) -> list[tuple[str, bytes | None]]:
        """(topic, value) of each queued message; None for a tombstone."""
        if isinstance(self.store, MemoryStore):
            return [(m.topic, m.value) for m in self.store.data.outbox]
        assert self.conn is not None
        rows = await self.conn.fetch("SELECT topic, payload FROM outbox ORDER BY id")
        return [(row["topic"], _bytes(row["payload"])) for row in rows]


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


@pytest.fixture(params=["memory", "postgres"])
async def harness(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        yield Harness(MemoryStore(), None)
        return
    pool = await create_pool(database_url, 4)
    conn = await asyncpg.connect(database_url)
    try:
        yield Harness(PostgresStore(pool, MasterKey(new_key())), conn)
    finally:
        await conn.close()
        await pool.close()


def purchase_order(document_id: str, version: int, status: str = "draft") -> po.PurchaseOrder:
    details = po.PurchaseOrderDetails(
        supplier_id="SUP-1",
        warehouse_id="WH-1",
        products=(po.ProductLine("SKU-1", 5, cost=Decimal("2.50")),),
        currency_code="EUR",
    )
    return po.PurchaseOrder("tenant-a", document_id, po.Status(status), version, details)


def version_of(state: Any) -> Version[Any]:
    snapshot = wire_json(purchase_order_family().rules.snapshot(state))
    entry = HistoryEntry(state.version, uuid4(), uuid4(), "purchase_order.created", snapshot)
    return Version(state, entry)


def accepted(*keys: str) -> list[Answer]:
    return [Answer(key, Outcome.ACCEPTED, []) for key in keys]


async def test_a_key_is_new_once_then_a_duplicate_or_a_reuse(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        first = await uow.claim_many([("k1", b"a"), ("k2", b"b"), ("k1", b"a"), ("k2", b"c")])
        await uow.answer_many(accepted("k1", "k2"))
    assert first == [Claim.NEW, Claim.NEW, Claim.DUPLICATE, Claim.REUSED]
    async with harness.store.unit_of_work() as uow:
        again = await uow.claim_many([("k1", b"a"), ("k2", b"x"), ("k3", b"c")])
        assert await uow.stored_request_hashes(["k1", "k2", "k9"]) == {"k1": b"a", "k2": b"b"}
        await uow.answer_many(accepted("k3"))
    assert again == [Claim.DUPLICATE, Claim.REUSED, Claim.NEW]


async def test_each_answer_is_stored_with_its_outcome_and_reply(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        await uow.claim_many([("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4"), ("e", b"5")])
        await uow.answer_many(
            [
                Answer("a", Outcome.ACCEPTED, []),
                Answer("b", Outcome.REJECTED, []),
                Answer("c", Outcome.ACCEPTED, [], b"reply of c"),
                Answer("d", Outcome.DEAD_LETTERED, [], b"reply of d"),
                Answer("e", Outcome.PARKED, []),
            ]
        )
    async with harness.store.unit_of_work() as uow:
        stored = await uow.stored_answers(["a", "b", "c", "d", "e", "unseen"])
    assert {key: (answer.outcome, answer.summary) for key, answer in stored.items()} == {
        "a": ("accepted", None),
        "b": ("rejected", None),
        "c": ("accepted", b"reply of c"),
        "d": ("dead_lettered", b"reply of d"),
        "e": ("parked", None),
    }


async def test_a_claim_left_unanswered_fails_the_unit_of_work(harness: Harness) -> None:
    async def half_answered() -> None:
        async with harness.store.unit_of_work() as uow:
            await uow.claim_many([("k1", b"a"), ("k2", b"b")])
            await uow.answer_many(
                [Answer("k1", Outcome.ACCEPTED, [OutboxMessage("t", b"k", b"v")])]
            )

    with pytest.raises(UnansweredClaimError) as raised:
        await half_answered()
    assert raised.value.keys == ("k2",)
    async with harness.store.unit_of_work() as uow:
        assert await uow.claim_many([("k1", b"a"), ("k2", b"b")]) == [Claim.NEW, Claim.NEW]
        await uow.answer_many(accepted("k1", "k2"))
    assert await harness.outbox() == []


async def test_a_failed_unit_of_work_leaves_nothing(harness: Harness) -> None:
    async def failing_batch() -> None:
        async with harness.store.unit_of_work() as uow:
            await uow.claim_many([("k1", b"a")])
            await uow.answer_many(
                [Answer("k1", Outcome.ACCEPTED, [OutboxMessage("t", b"k", b"v")])]
            )
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        await failing_batch()
    async with harness.store.unit_of_work() as uow:
        assert await uow.claim_many([("k1", b"a")]) == [Claim.NEW]
        await uow.answer_many(accepted("k1"))
    assert await harness.outbox() == []


async def test_answers_queue_their_messages_in_order(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        await uow.claim_many([("k1", b"a"), ("k2", b"b")])
        await uow.answer_many(
            [
                Answer("k1", Outcome.ACCEPTED, [OutboxMessage("t", b"1", b"one")]),
                Answer(
                    "k2",
                    Outcome.REJECTED,
                    [OutboxMessage("t", b"2", b"two"), OutboxMessage("u", b"2", b"three")],
                ),
            ],
            # A tombstone: a null value, kept as null all the way to Kafka.
            [OutboxMessage("t", b"3", b"four"), OutboxMessage("s", b"3", None)],
        )
    assert await harness.outbox() == [
        ("t", b"one"),
        ("t", b"two"),
        ("u", b"three"),
        ("t", b"four"),
        ("s", None),
    ]


async def test_only_set_aside_keys_reopen_for_a_replay(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        await uow.claim_many([("decided", b"a"), ("lettered", b"b"), ("parked", b"c")])
        await uow.answer_many(
            [
                Answer("decided", Outcome.ACCEPTED, []),
                Answer("lettered", Outcome.DEAD_LETTERED, []),
                Answer("parked", Outcome.PARKED, []),
            ]
        )
    async with harness.store.unit_of_work() as uow:
        await uow.reopen_for_replay(["decided", "lettered", "parked"])
        claims = await uow.claim_many([("decided", b"a"), ("lettered", b"b"), ("parked", b"c")])
        await uow.answer_many(accepted("lettered", "parked"))
    assert claims == [Claim.DUPLICATE, Claim.NEW, Claim.NEW]


async def test_a_reuse_is_recorded_once_per_content(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        assert await uow.claim_reuse("k1", b"x") is True
        assert await uow.claim_reuse("k1", b"x") is False
        assert await uow.claim_reuse("k1", b"y") is True


async def test_a_token_is_bound_to_its_first_request(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        bound = await uow.bind_tokens([("iss", "t1", "r1"), ("iss", "t1", "r2")])
    assert bound == {("iss", "t1"): "r1"}
    async with harness.store.unit_of_work() as uow:
        bound = await uow.bind_tokens([("iss", "t1", "r3"), ("other", "t1", "r3")])
    assert bound == {("iss", "t1"): "r1", ("other", "t1"): "r3"}


async def test_documents_round_trip_and_leave_tombstones(harness: Harness) -> None:
    created = purchase_order("PO-1", 1)
    opened = purchase_order("PO-1", 2, "open")
    doomed = purchase_order("PO-2", 1)
    async with harness.store.unit_of_work() as uow:
        changes: Changes[po.State] = Changes({})
        changes.record(created, [version_of(created)])
        changes.record(opened, [version_of(opened)])
        changes.record(doomed, [version_of(doomed)])
        await uow.documents(KIND).save_many(changes)
    async with harness.store.unit_of_work() as uow:
        documents = uow.documents(KIND)
        loaded = await documents.load_many([("tenant-a", "PO-1"), ("tenant-a", "PO-2")])
        assert loaded == {("tenant-a", "PO-1"): opened, ("tenant-a", "PO-2"): doomed}
        gone = po.DeletedPurchaseOrder("tenant-a", "PO-2", 2)
        deletion: Changes[po.State] = Changes(loaded)
        deletion.record(gone, [])
        await documents.save_many(deletion)
    async with harness.store.unit_of_work() as uow:
        after = await uow.documents(KIND).load_many([("tenant-a", "PO-2"), ("tenant-a", "PO-9")])
    [tombstone] = after.values()
    assert isinstance(tombstone, po.DeletedPurchaseOrder)
    assert (tombstone.document_id, tombstone.version) == ("PO-2", 2)


async def save_versions(harness: Harness, *states: po.State) -> None:
    """Each state as its document's next version, in one unit of work."""
    async with harness.store.unit_of_work() as uow:
        documents = uow.documents(KIND)
        keys = [(state.tenant_id, state.document_id) for state in states]
        changes: Changes[po.State] = Changes(await documents.load_many(keys))
        for state in states:
            changes.record(state, [] if state.is_deleted else [version_of(state)])
        await documents.save_many(changes)


async def test_versions_out_of_sequence_are_refused_and_nothing_is_written(
    harness: Harness,
) -> None:
    await save_versions(harness, purchase_order("PO-1", 1), purchase_order("PO-3", 1))
    await save_versions(harness, po.DeletedPurchaseOrder("tenant-a", "PO-1", 2))
    # A family's defects, refused before anything is written: a deleted document's id used
    # again from version 1, a version skipped, a deletion that is not a version of its own.
    for wrong in (
        purchase_order("PO-1", 1),
        purchase_order("PO-2", 2),
        po.DeletedPurchaseOrder("tenant-a", "PO-3", 1),
    ):
        with pytest.raises(VersionSequenceError) as refused:
            await save_versions(harness, wrong)
        assert refused.value.documents == ((wrong.tenant_id, wrong.document_id),)
    async with harness.store.unit_of_work() as uow:
        found = await uow.documents(KIND).load_many(
            [("tenant-a", "PO-1"), ("tenant-a", "PO-2"), ("tenant-a", "PO-3")]
        )
    assert {key[1]: (type(state).__name__, state.version) for key, state in found.items()} == {
        "PO-1": ("DeletedPurchaseOrder", 2),
        "PO-3": ("PurchaseOrder", 1),
    }


async def test_a_preview_reads_and_writes_nothing(harness: Harness) -> None:
    created = purchase_order("PO-1", 1)
    async with harness.store.unit_of_work() as uow:
        changes: Changes[po.State] = Changes({})
        changes.record(created, [version_of(created)])
        await uow.documents(KIND).save_many(changes)
    async with harness.store.trial_unit_of_work() as trial, trial.previewing() as preview:
        documents = preview.documents(KIND)
        assert await documents.load_many([("tenant-a", "PO-1")]) == {("tenant-a", "PO-1"): created}
        changed: Changes[po.State] = Changes({})
        opened = purchase_order("PO-1", 2, "open")
        changed.record(opened, [version_of(opened)])
        await documents.save_many(changed)
        assert await documents.load_many([("tenant-a", "PO-1")]) == {("tenant-a", "PO-1"): created}
        with pytest.raises(WriteInPreviewError):
            await preview.claim_many([("k", b"h")])
        with pytest.raises(WriteInPreviewError):
            await preview.answer_many([], [OutboxMessage("t", b"k", b"v")])
        repository = order_repository(preview)
        assert await repository.record_customer_erasure("tenant-a", "CUST-1") == 1
        assert await repository.record_customer_erasure("tenant-a", "CUST-1") == 1
    assert await harness.outbox() == []


async def test_erasures_of_a_customer_are_counted(harness: Harness) -> None:
    async with harness.store.unit_of_work() as uow:
        repository = order_repository(uow)
        assert await repository.erased_customers([("tenant-a", "CUST-1")]) == set()
        assert await repository.record_customer_erasure("tenant-a", "CUST-1") == 1
        assert await repository.record_customer_erasure("tenant-a", "CUST-1") == 2
        assert await repository.erased_customers(
            [("tenant-a", "CUST-1"), ("tenant-b", "CUST-1")]
        ) == {("tenant-a", "CUST-1")}
        assert await repository.orders_of_customer("tenant-a", "CUST-1") == []
        assert await repository.voucher_holders([("tenant-a", "SPRING")]) == {}
