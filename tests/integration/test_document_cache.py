"""Purchase orders held decoded, on a real Postgres: a batch finds a document still at the event
this process committed without reading its snapshot; a version written by another instance, by
a transaction that rolled back, or again after Postgres lost the commit of the one held, is
never taken from the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.database import create_pool
from service.adapters.document_cache import CommittedDocuments
from service.adapters.unit_of_work import PostgresStore
from service.app.ports import Changes, DocumentKey
from service.domain import purchase_orders as po
from tests.integration.test_store_contract import KIND, purchase_order, version_of

KEY: DocumentKey = ("tenant-a", "PO-1")


@dataclass
class Instances:
    """Two instances on one database, each with its own cache."""

    cache: CommittedDocuments
    this: PostgresStore
    other: PostgresStore


@pytest.fixture
async def instances(database_url: str) -> AsyncIterator[Instances]:
    pool = await create_pool(database_url, 4)
    master = MasterKey(new_key())
    cache = CommittedDocuments(1 << 20)
    try:
        yield Instances(
            cache,
            PostgresStore(pool, master, documents=cache),
            PostgresStore(pool, master, documents=CommittedDocuments(1 << 20)),
        )
    finally:
        await pool.close()


async def save(store: PostgresStore, state: po.State, *, fail: bool = False) -> None:
    """Load the document and save `state` as its next version; `fail`: roll back."""

    class RolledBack(Exception):
        pass

    try:
        async with store.unit_of_work() as uow:
            documents = uow.documents(KIND)
            changes: Changes[po.State] = Changes(await documents.load_many([state_key(state)]))
            changes.record(state, [version_of(state)] if not state.is_deleted else [])
            await documents.save_many(changes)
            if fail:
                raise RolledBack
    except RolledBack:
        pass


def state_key(state: po.State) -> DocumentKey:
    return (state.tenant_id, state.document_id)


def held(instances: Instances) -> dict[DocumentKey, tuple[int, po.State]]:
    """(version, state) of what this instance holds."""
    found = instances.cache.lookup(KIND.name, [KEY])
    return {key: (entry.version, entry.state) for key, entry in found.items()}


async def load(store: PostgresStore) -> po.State:
    async with store.unit_of_work() as uow:
        state: po.State = (await uow.documents(KIND).load_many([KEY]))[KEY]
    return state


async def test_a_committed_version_is_found_without_reading_it_again(
    instances: Instances,
) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    assert await load(instances.this) is created, "the state this process committed"
    assert held(instances) == {KEY: (1, created)}


async def test_a_rolled_back_version_is_never_held(instances: Instances) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    opened = purchase_order("PO-1", 2, "open")
    await save(instances.this, opened, fail=True)
    assert held(instances) == {KEY: (1, created)}
    assert await load(instances.this) is created


async def test_a_transaction_reads_its_own_write_and_holds_it_only_once_committed(
    instances: Instances,
) -> None:
    await save(instances.this, purchase_order("PO-1", 1))
    opened = purchase_order("PO-1", 2, "open")

    class RolledBack(Exception):
        pass

    async def open_read_and_roll_back() -> None:
        async with instances.this.unit_of_work() as uow:
            documents = uow.documents(KIND)
            changes: Changes[po.State] = Changes(await documents.load_many([KEY]))
            changes.record(opened, [version_of(opened)])
            await documents.save_many(changes)
            # Its own uncommitted version 2, read from Postgres (the cache holds version 1).
            assert await documents.load_many([KEY]) == {KEY: opened}
            raise RolledBack

    with pytest.raises(RolledBack):
        await open_read_and_roll_back()
    [(version, _)] = held(instances).values()
    assert version == 1
    loaded = await load(instances.this)
    assert (loaded.version, loaded) == (1, purchase_order("PO-1", 1))


async def test_a_version_another_instance_wrote_is_read_from_postgres(
    instances: Instances,
) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    opened = purchase_order("PO-1", 2, "open")
    await save(instances.other, opened)
    loaded = await load(instances.this)
    assert loaded == opened
    assert loaded is not opened, "decoded from the other instance's snapshot"
    # And then held at that version.
    assert await load(instances.this) is loaded


async def test_a_deleted_document_is_forgotten_here_and_read_as_a_tombstone_elsewhere(
    instances: Instances,
) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    assert await load(instances.other) == created  # the other instance holds it too
    await save(instances.this, po.DeletedPurchaseOrder("tenant-a", "PO-1", 2))
    assert held(instances) == {}
    for store in (instances.this, instances.other):
        tombstone = await load(store)
        assert isinstance(tombstone, po.DeletedPurchaseOrder)
        assert tombstone.version == 2


async def test_without_a_cache_every_document_is_read(database_url: str) -> None:
    pool = await create_pool(database_url, 2)
    try:
        store = PostgresStore(pool, MasterKey(new_key()), documents=CommittedDocuments(0))
        created = purchase_order("PO-1", 1)
        await save(store, created)
        loaded = await load(store)
        assert loaded == created
        assert loaded is not created
    finally:
        await pool.close()


async def rewrite(database_url: str, statement: str) -> None:
    """Change PO-1's row behind the service's back."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(statement + " WHERE document_id = 'PO-1'")
    finally:
        await conn.close()


async def test_a_document_changed_by_hand_is_read_again(
    instances: Instances, database_url: str
) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    assert await load(instances.this) is created
    # A fix made by hand at the same version names no new event: the row forgets the one it
    # had (migration 0022's trigger), and the instance that held it reads what is stored.
    await rewrite(
        database_url, 'UPDATE documents SET document = document || \'{"status": "open"}\''
    )
    for instance in (instances.this, instances.other):
        loaded = await load(instance)
        assert isinstance(loaded, po.PurchaseOrder)
        assert (loaded.version, loaded.status) == (1, po.Status("open"))
    assert held(instances) == {}, "a row without its event is not held"


async def test_a_version_written_again_after_postgres_lost_its_commit_is_read_again(
    instances: Instances, database_url: str
) -> None:
    await save(instances.this, purchase_order("PO-1", 1))
    opened = purchase_order("PO-1", 2, "open")
    await save(instances.this, opened)
    # A failover lost the commit of version 2, and another command made a version 2 of its
    # own: the same number, another event, another state.
    cancelled = purchase_order("PO-1", 2, "cancelled")
    await rewrite(
        database_url,
        "UPDATE documents SET last_event_id = gen_random_uuid(),"
        ' document = document || \'{"status": "cancelled"}\'',
    )
    loaded = await load(instances.this)
    assert (loaded.version, loaded) == (2, cancelled)
    assert held(instances) == {KEY: (2, loaded)}, "the later of two at one version"


async def test_a_later_version_an_earlier_build_wrote_is_read_again(
    instances: Instances, database_url: str
) -> None:
    await save(instances.this, purchase_order("PO-1", 1))
    # During a rolling upgrade across migration 0022, a build that does not know the column
    # writes version 2 and leaves the event id of version 1 beside it.
    await rewrite(
        database_url,
        'UPDATE documents SET version = 2, document = document || \'{"status": "open"}\'',
    )
    loaded = await load(instances.this)
    assert (loaded.version, loaded) == (2, purchase_order("PO-1", 2, "open"))


async def test_documents_written_before_their_event_was_kept_are_read_as_ever(
    instances: Instances, database_url: str
) -> None:
    created = purchase_order("PO-1", 1)
    await save(instances.this, created)
    instances.cache.forget(KIND.name, [KEY])
    await rewrite(database_url, "UPDATE documents SET last_event_id = NULL")
    for _ in range(2):
        loaded = await load(instances.this)
        assert loaded == created
        assert loaded is not created
    assert held(instances) == {}
