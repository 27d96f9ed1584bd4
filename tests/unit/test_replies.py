"""Replies to commands that ask for one: where they may go, one per message, duplicates answered
from what the inbox recorded. On the in-memory store; the Kafka round trip is in
tests/e2e/test_replies.py."""

from __future__ import annotations

import json
from collections.abc import Collection
from itertools import count
from typing import Any
from uuid import uuid4

import pytest

from contracts.headers import CORRELATION_ID, REPLY_TO
from contracts.replies import MAX_REPLY_ERRORS, CommandReply
from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore
from service.app.family import EventRef
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.parse import parse_command
from service.app.ports import Outcome
from service.app.processor import CommandProcessor
from service.app.provenance import ReplayGrant, Signer
from service.app.purchase_orders.family import purchase_order_family
from service.app.received import Received
from service.app.replies import ReplyPolicy, ReplyRoute, Summary
from service.app.reply_admission import ReplyAdmission
from service.app.retry import RetryPolicy
from service.domain.problems import ErrorCode, Problem
from service.errors import ConfigurationError
from tests.failing_decider import FailsOn
from tests.support import change_status, create

FAMILY = purchase_order_family("u.")
TOPICS = FAMILY.topics
REPLIES = "u.replies.tenant-a_client-1"
POLICY = ReplyPolicy(("u.replies.",))
offsets = count()


def message(
    body: dict[str, Any] | bytes,
    *,
    reply_to: str | None = REPLIES,
    correlation: bytes | None = b"c-1",
    key: str = "PO-1",
) -> IncomingMessage:
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers: list[tuple[str, bytes]] = []
    if reply_to is not None:
        headers.append((REPLY_TO, reply_to.encode()))
    if correlation is not None:
        headers.append((CORRELATION_ID, correlation))
    return IncomingMessage("u.cmds", 0, next(offsets), 1, key.encode(), value, tuple(headers))


class Topics:
    """A cluster with these topics."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)

    async def existing(self, topics: Collection[str]) -> set[str]:
        return self.names & set(topics)


def processor(
    store: MemoryStore, decider: Any = None, topics: Topics | None = None
) -> CommandProcessor[Any]:
    return CommandProcessor(
        store,
        decider or DocumentDecider(FAMILY, "u.movements"),
        max_command_bytes=65536,
        signer=Signer(new_key(), "u"),
        retry=RetryPolicy(first_backoff_seconds=0.001, max_backoff_seconds=0.002),
        replies=POLICY,
        topics=topics,
    )


def bodies(store: MemoryStore, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value or b"") for m in store.data.outbox if m.topic == topic]


def replies(store: MemoryStore, topic: str = REPLIES) -> list[tuple[CommandReply, bytes | None]]:
    """Each reply on `topic`, read strictly, with the correlation_id it carries."""
    return [
        (
            CommandReply.model_validate_json(m.value or b""),
            dict(m.headers).get(CORRELATION_ID),
        )
        for m in store.data.outbox
        if m.topic == topic
    ]


# --- Where replies may go ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [
        ("u.replies.tenant-a", True),
        ("u.replies.tenant-a_client-7", True),
        ("u.replies.tenant-a.client-7", False),  # the topic of a tenant "tenant-a.client-7"
        ("u.replies.tenant-ab", False),  # another tenant whose id starts alike
        ("u.replies.tenant-b", False),
        ("u.replies.", False),
        ("u.orders.events", False),
        ("orders.events", False),
        ("u.purchase-orders.commands", False),
        ("u.replies.tenant-a/../x", False),  # not a topic name
        ("u.replies.tenant-a_" + "x" * 240, False),  # longer than Kafka allows
        ("", False),
    ],
)
def test_a_reply_topic_is_the_senders_tenant_under_an_allowed_prefix(
    topic: str, allowed: bool
) -> None:
    route = POLICY.route([(REPLY_TO, topic.encode())], "tenant-a")
    if allowed:
        assert route == ReplyRoute(topic)
    else:
        assert isinstance(route, Problem)
        assert (route.code, route.field) == (ErrorCode.FORBIDDEN, "headers.reply_to")


def test_without_tenant_scoping_any_name_under_the_prefix_is_allowed() -> None:
    policy = ReplyPolicy(("u.replies.",), per_tenant=False)
    assert policy.route([(REPLY_TO, b"u.replies.shared")], "tenant-a") == ReplyRoute(
        "u.replies.shared"
    )
    assert isinstance(policy.route([(REPLY_TO, b"u.orders.events")], "tenant-a"), Problem)


@pytest.mark.parametrize(
    "headers",
    [
        [(REPLY_TO, REPLIES.encode()), (REPLY_TO, REPLIES.encode())],
        [(REPLY_TO, REPLIES.encode()), (CORRELATION_ID, b"")],
        [(REPLY_TO, REPLIES.encode()), (CORRELATION_ID, b"x" * 129)],
        [(REPLY_TO, REPLIES.encode()), (CORRELATION_ID, b"has space")],
        [(REPLY_TO, REPLIES.encode()), (CORRELATION_ID, "é".encode())],
        [(REPLY_TO, REPLIES.encode()), (CORRELATION_ID, b"a"), (CORRELATION_ID, b"b")],
    ],
)
def test_ambiguous_or_unprintable_reply_headers_are_refused(
    headers: list[tuple[str, bytes]],
) -> None:
    assert isinstance(POLICY.route(headers, "tenant-a"), Problem)


def test_a_prefix_covering_the_services_own_topics_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match=r"u\.orders\.events"):
        ReplyPolicy(("u.orders.",)).check(["u.orders.commands", "u.orders.events"])
    with pytest.raises(ConfigurationError, match="not a topic prefix"):
        ReplyPolicy(("",)).check(["u.orders.events"])
    ReplyPolicy(("u.replies.",)).check(["u.orders.commands", "u.orders.events"])


def test_what_the_inbox_keeps_is_bounded() -> None:
    problems = [Problem(ErrorCode.INVALID_REQUEST, "x" * 100, f"f{i}") for i in range(500)]
    fields = json.loads(Summary(Outcome.DEAD_LETTERED, problems=problems).stored())
    assert len(fields["errors"]) == MAX_REPLY_ERRORS
    assert fields["errors_omitted"] == 500 - MAX_REPLY_ERRORS


# --- One reply per message ------------------------------------------------------------------


async def test_an_accepted_command_is_answered_with_its_events() -> None:
    store = MemoryStore()
    command = create("PO-1")
    assert await processor(store).process_batch([message(command)]) == [Outcome.ACCEPTED]
    [event] = bodies(store, TOPICS.events)
    [(reply, correlation)] = replies(store)
    assert correlation == b"c-1"
    assert (reply.outcome, reply.accepted, reply.repeat) == ("accepted", True, False)
    assert str(reply.command_id) == command["command_id"]
    assert (reply.tenant_id, reply.type, reply.document_id) == (
        "tenant-a",
        "purchase_order.create",
        "PO-1",
    )
    [receipt] = reply.events
    assert (str(receipt.event_id), receipt.type, receipt.version, receipt.document_id) == (
        event["event_id"],
        "purchase_order.created",
        1,
        "PO-1",
    )
    assert reply.errors == []


async def test_a_refused_command_is_answered_with_the_rejections_errors() -> None:
    store = MemoryStore()
    await processor(store).process_batch([message(change_status("PO-9", "open"), key="PO-9")])
    [(reply, _)] = replies(store)
    [rejection] = bodies(store, TOPICS.rejections)
    assert (reply.outcome, reply.accepted) == ("rejected", False)
    assert [e.model_dump(mode="json") for e in reply.errors] == rejection["errors"]


async def test_an_unproven_invalid_message_is_answered_on_the_rejections_topic_only() -> None:
    # Its tenant is only what its body says: writing into that tenant's replies would let
    # anyone put text of their choosing there.
    store = MemoryStore()
    invalid = create("PO-1")
    invalid["payload"]["products"] = []
    assert await processor(store).process_batch([message(invalid)]) == [Outcome.DEAD_LETTERED]
    assert replies(store) == []
    [rejection] = bodies(store, TOPICS.rejections)
    assert rejection["errors"][0]["field"] == "payload.products"


def test_a_dead_letter_replay_gets_no_reply() -> None:
    # The replay's signature covers its command, not reply headers anyone could add to it.
    sent = message(create("PO-1"))
    parsed = parse_command(sent, 65536, FAMILY.commands)
    admission = ReplyAdmission[Any](POLICY, None)
    assert admission.route(Received(sent, parsed)).reply == ReplyRoute(REPLIES, b"c-1")
    replayed = Received(sent, parsed, replay=ReplayGrant("u.cmds/0/1", None, "operator"))
    assert admission.route(replayed).reply is None


def test_what_a_reply_repeats_is_cut_to_size() -> None:
    refs = [EventRef(uuid4(), "order.redacted", 2, f"O-{n}") for n in range(250)]
    long = Problem(ErrorCode.INVALID_REQUEST, "m" * 5000, "payload." + "f" * 5000)
    fields = json.loads(Summary(Outcome.ACCEPTED, refs, [long]).stored())
    assert (len(fields["events"]), fields["events_omitted"]) == (100, 150)
    assert len(fields["errors"][0]["message"]) == len(fields["errors"][0]["field"]) == 200


async def test_a_command_that_asks_for_no_reply_gets_none() -> None:
    store = MemoryStore()
    await processor(store).process_batch([message(create("PO-1"), reply_to=None)])
    assert not [m for m in store.data.outbox if "replies" in m.topic]


async def test_a_forbidden_reply_topic_refuses_the_command_before_it_is_decided() -> None:
    store = MemoryStore()
    command = create("PO-1")
    outcomes = await processor(store).process_batch(
        [message(command, reply_to="u.purchase-orders.events")]
    )
    assert outcomes == [Outcome.REJECTED]
    assert store.data.documents.get(FAMILY.name, {}) == {}
    assert {m.topic for m in store.data.outbox} == {TOPICS.rejections}
    [rejection] = [json.loads(m.value or b"") for m in store.data.outbox]
    assert rejection["errors"][0]["field"] == "headers.reply_to"
    assert rejection["errors"][0]["error_code"] == "forbidden"
    # Not claimed: sent again with an allowed reply topic, the same command is decided.
    assert await processor(store).process_batch([message(command)]) == [Outcome.ACCEPTED]


async def test_a_reply_topic_that_does_not_exist_refuses_the_command() -> None:
    store = MemoryStore()
    topics = Topics(REPLIES)
    missing = "u.replies.tenant-a_not-created"
    outcomes = await processor(store, topics=topics).process_batch(
        [message(create("PO-1"), reply_to=missing), message(create("PO-2"), key="PO-2")]
    )
    assert outcomes == [Outcome.REJECTED, Outcome.ACCEPTED]
    [rejection] = [
        json.loads(m.value or b"") for m in store.data.outbox if m.topic == TOPICS.rejections
    ]
    assert "does not exist" in rejection["errors"][0]["message"]
    assert replies(store, missing) == []
    assert len(replies(store)) == 1


async def test_another_tenants_reply_topic_is_refused() -> None:
    store = MemoryStore()
    outcomes = await processor(store).process_batch(
        [message(create("PO-1"), reply_to="u.replies.tenant-b")]
    )
    assert outcomes == [Outcome.REJECTED]
    assert replies(store, "u.replies.tenant-b") == []


# --- Duplicates -----------------------------------------------------------------------------


async def test_a_resent_command_is_answered_with_its_original_outcome_as_a_repeat() -> None:
    store = MemoryStore()
    command = create("PO-1")
    await processor(store).process_batch([message(command, correlation=b"first")])
    [(first, _)] = replies(store)
    queued = len(store.data.outbox)

    # A new process, another reply topic and correlation_id: the same command_id and body.
    resend = message(command, reply_to="u.replies.tenant-a_restarted", correlation=b"second")
    assert await processor(store).process_batch([resend]) == [Outcome.DUPLICATE]
    [(repeat, correlation)] = replies(store, "u.replies.tenant-a_restarted")
    assert correlation == b"second"
    assert repeat.repeat
    assert (repeat.outcome, repeat.events) == (first.outcome, first.events)
    # Nothing else was published: no event, no rejection.
    assert len(store.data.outbox) == queued + 1


async def test_a_resent_refused_command_is_answered_refused_again() -> None:
    store = MemoryStore()
    command = change_status("PO-9", "open")
    await processor(store).process_batch([message(command, key="PO-9")])
    await processor(store).process_batch([message(command, correlation=b"again", key="PO-9")])
    first, repeat = (reply for reply, _ in replies(store))
    assert (repeat.outcome, repeat.repeat, repeat.errors) == ("rejected", True, first.errors)


async def test_a_duplicate_in_the_same_batch_is_answered_from_the_first() -> None:
    store = MemoryStore()
    command = create("PO-1")
    outcomes = await processor(store).process_batch(
        [message(command, correlation=b"a"), message(command, correlation=b"b")]
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    (first, a), (second, b) = replies(store)
    assert (a, b) == (b"a", b"b")
    assert (first.repeat, second.repeat) == (False, True)
    assert second.events == first.events


async def test_a_reused_command_id_is_answered_refused() -> None:
    store = MemoryStore()
    first = create("PO-1")
    reuse = create("PO-1")
    reuse["command_id"] = first["command_id"]
    reuse["payload"]["products"][0]["quantity"] += 1
    await processor(store).process_batch([message(first, reply_to=None)])
    await processor(store).process_batch([message(reuse), message(reuse)])
    (refused, _), (again, _) = replies(store)
    assert (refused.outcome, refused.repeat) == ("rejected", False)
    assert refused.errors[0].error_code == "idempotency_key_reused"
    assert (again.outcome, again.repeat) == ("rejected", True)


async def test_a_parked_command_is_answered_parked() -> None:
    store = MemoryStore()
    failing = FailsOn(DocumentDecider(FAMILY, "u.movements"), "PO-1", RuntimeError("defect"))
    outcomes = await processor(store, failing).process_batch([message(create("PO-1"))])
    assert outcomes == [Outcome.PARKED]
    [(reply, _)] = replies(store)
    assert (reply.outcome, reply.errors[0].error_code) == ("parked", "processing_failed")


async def test_a_dry_run_is_answered_with_its_preview() -> None:
    store = MemoryStore()
    command = create("PO-1")
    command["dry_run"] = True
    assert await processor(store).process_batch([message(command)]) == [Outcome.PREVIEWED]
    [(reply, _)] = replies(store)
    [preview] = bodies(store, TOPICS.previews)
    assert (reply.outcome, reply.accepted, reply.preview) == ("previewed", False, preview)
