"""The processor's batch rules, on the in-memory store: duplicates, reused keys, order within a
batch, splitting around a failing command, parking, transient failures, dry runs. Milliseconds
each; the Postgres-specific sides of these (locks, concurrent claims, the WAL) stay in the
integration and end-to-end suites."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from service.app.retry import RetryPolicy
from service.errors import TransientError
from tests.failing_decider import FailsOn
from tests.support import change_status, create

FAMILY = purchase_order_family("u.")
TOPICS = FAMILY.topics
SIGNER = Signer(new_key(), "u")
FAST_RETRY = RetryPolicy(first_backoff_seconds=0.001, max_backoff_seconds=0.002)
offsets = count()


def message(body: dict[str, Any] | bytes, key: str = "PO-1") -> IncomingMessage:
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    return IncomingMessage("u.cmds", 0, next(offsets), 1, key.encode(), value)


def processor(store: MemoryStore, decider: Any = None) -> CommandProcessor[Any]:
    return CommandProcessor(
        store,
        decider or DocumentDecider(FAMILY, "u.movements"),
        max_command_bytes=65536,
        signer=SIGNER,
        retry=FAST_RETRY,
    )


def published(store: MemoryStore, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value or b"null") for m in store.data.outbox if m.topic == topic]


def fails_on(document_id: str, error: Exception, times: int | None = None) -> FailsOn:
    return FailsOn(DocumentDecider(FAMILY, "u.movements"), document_id, error, times)


async def test_commands_of_one_document_in_one_batch_see_each_other() -> None:
    store = MemoryStore()
    outcomes = await processor(store).process_batch(
        [
            message(create("PO-1")),
            message(change_status("PO-1", "open", expected_version=1)),
            message(change_status("PO-1", "closed")),  # open -> closed is not allowed
            message(change_status("PO-1", "receiving", expected_version=2)),
        ]
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    events = published(store, TOPICS.events)
    assert [(e["type"], e["version"]) for e in events] == [
        ("purchase_order.created", 1),
        ("purchase_order.status_changed", 2),
        ("purchase_order.status_changed", 3),
    ]
    [rejection] = published(store, TOPICS.rejections)
    assert rejection["errors"][0]["error_code"] == "invalid_status"
    [order] = store.data.documents[FAMILY.name].values()
    assert (order.status, order.version) == ("receiving", 3)


async def test_a_redelivered_command_is_a_duplicate_and_publishes_nothing() -> None:
    store = MemoryStore()
    command = create("PO-1")
    assert await processor(store).process_batch([message(command)]) == [Outcome.ACCEPTED]
    queued = len(store.data.outbox)
    again = await processor(store).process_batch([message(command), message(command)])
    assert again == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(store.data.outbox) == queued


async def test_a_command_twice_in_one_batch_is_decided_once() -> None:
    store = MemoryStore()
    command = create("PO-1")
    outcomes = await processor(store).process_batch([message(command), message(command)])
    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert len(published(store, TOPICS.events)) == 1


async def test_a_reused_command_id_is_refused_once_and_then_silent() -> None:
    store = MemoryStore()
    first = create("PO-1")
    reuse = create("PO-1")
    reuse["command_id"] = first["command_id"]
    reuse["payload"]["products"][0]["quantity"] += 1
    await processor(store).process_batch([message(first)])
    outcomes = await processor(store).process_batch([message(reuse), message(reuse)])
    assert outcomes == [Outcome.REJECTED, Outcome.DUPLICATE]
    [rejection] = published(store, TOPICS.rejections)
    assert rejection["errors"][0]["error_code"] == "idempotency_key_reused"
    assert await processor(store).process_batch([message(reuse)]) == [Outcome.DUPLICATE]


async def test_an_invalid_command_is_dead_lettered_and_its_neighbours_commit() -> None:
    store = MemoryStore()
    invalid = create("PO-2")
    invalid["payload"]["products"] = []
    outcomes = await processor(store).process_batch(
        [message(create("PO-1")), message(b"\xff{not json", "PO-X"), message(invalid, "PO-2")]
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.DEAD_LETTERED, Outcome.DEAD_LETTERED]
    assert len(published(store, TOPICS.events)) == 1
    assert len([m for m in store.data.outbox if m.topic == TOPICS.dead_letters]) == 2
    # The invalid command with a readable id is answered; the unreadable one cannot be.
    [rejection] = published(store, TOPICS.rejections)
    assert rejection["command_id"] == invalid["command_id"]


async def test_a_failing_command_is_split_out_and_parked_while_the_rest_commit() -> None:
    store = MemoryStore()
    decider = fails_on("PO-BUG", RuntimeError("a defect"))
    batch = [message(create(f"PO-{i}"), f"PO-{i}") for i in range(3)]
    batch.insert(1, message(create("PO-BUG"), "PO-BUG"))
    outcomes = await processor(store, decider).process_batch(batch)
    assert outcomes == [Outcome.ACCEPTED, Outcome.PARKED, Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert decider.batch_sizes[0] == 4, "the whole batch was tried first"
    assert {e["purchase_order_id"] for e in published(store, TOPICS.events)} == {
        "PO-0",
        "PO-1",
        "PO-2",
    }
    [parked] = published(store, TOPICS.rejections)
    assert parked["errors"][0]["error_code"] == "processing_failed"
    assert [m.topic for m in store.data.outbox].count(TOPICS.dead_letters) == 1
    # Redelivered after the park: answered already, decided never.
    assert await processor(store, decider).process_batch([batch[1]]) == [Outcome.DUPLICATE]


async def test_a_command_that_fails_once_is_retried_not_parked() -> None:
    store = MemoryStore()
    decider = fails_on("PO-1", RuntimeError("a passing defect"), times=1)
    outcomes = await processor(store, decider).process_batch([message(create("PO-1"))])
    assert outcomes == [Outcome.ACCEPTED]
    assert published(store, TOPICS.rejections) == []


async def test_transient_failures_are_waited_out_without_splitting() -> None:
    store = MemoryStore()
    decider = fails_on("PO-1", TransientError("connection lost"), times=3)
    batch = [message(create("PO-1")), message(create("PO-2"), "PO-2")]
    assert await processor(store, decider).process_batch(batch) == [Outcome.ACCEPTED] * 2
    assert decider.batch_sizes == [2, 2, 2, 2], "retried whole, never split"


async def test_an_unreachable_database_is_waited_out_not_blamed_on_the_command() -> None:
    store = MemoryStore()
    store.reachable_now = False
    decider = fails_on("PO-1", RuntimeError("server closed the connection"), times=4)
    outcomes = await processor(store, decider).process_batch([message(create("PO-1"))])
    assert outcomes == [Outcome.ACCEPTED], "never parked while the database was away"


async def test_nothing_of_a_failed_batch_is_kept() -> None:
    """A batch is one transaction: the states, inbox keys and messages of a failed attempt are
    gone, so its retry decides every command afresh and publishes each outcome once."""
    store = MemoryStore()
    decider = fails_on("PO-2", TransientError("lost"), times=1)
    batch = [message(create("PO-1")), message(create("PO-2"), "PO-2")]
    assert await processor(store, decider).process_batch(batch) == [Outcome.ACCEPTED] * 2
    assert [e["purchase_order_id"] for e in published(store, TOPICS.events)] == ["PO-1", "PO-2"]


async def test_a_dry_run_previews_and_writes_nothing_else() -> None:
    store = MemoryStore()
    await processor(store).process_batch([message(create("PO-1"))])
    documents_before = dict(store.data.documents[FAMILY.name])
    inbox_before = dict(store.data.inbox)
    dry = change_status("PO-1", "open")
    dry["dry_run"] = True
    assert await processor(store).process_batch([message(dry)]) == [Outcome.PREVIEWED]
    [preview] = published(store, TOPICS.previews)
    assert preview["would_accept"] is True
    assert store.data.documents[FAMILY.name] == documents_before
    assert store.data.inbox == inbox_before
    assert published(store, TOPICS.events)[-1]["type"] == "purchase_order.created"
