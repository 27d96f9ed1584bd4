"""The command client's reply reader: it answers a request only with a reply that carries the
request's correlation_id and names its command; anything else is passed over or fails in a way
the reader skips, so it never stops answering."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from contract_tools.client import (
    Accepted,
    CommandClient,
    Previewed,
    Refused,
    ReplyMismatch,
    _record,
    _Request,
)
from contracts import purchase_orders as po
from contracts.headers import CORRELATION_ID
from contracts.replies import request_digest
from tests.support import create, details


def waiting(client: CommandClient, correlation: bytes) -> tuple[po.CreatePurchaseOrder, Any]:
    command = po.CreatePurchaseOrder.model_validate(create("PO-1", tenant_id="t"))
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client._waiting[correlation] = _Request(command, future, request_digest(*_record(command)))
    return command, future


def reply(command: po.CreatePurchaseOrder, **fields: Any) -> bytes:
    body = {
        "command_id": str(command.command_id),
        "tenant_id": command.tenant_id,
        "request_digest": request_digest(*_record(command)),
        "type": command.type,
        "document_id": command.purchase_order_id,
        "outcome": "accepted",
        "accepted": True,
        "events": [
            {
                "event_id": str(uuid4()),
                "type": "purchase_order.created",
                "version": 1,
                "document_id": "PO-1",
            }
        ],
        "replied_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    return json.dumps(body).encode()


async def test_a_reply_answers_the_request_with_its_correlation_id() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    command, future = waiting(client, b"c1")
    client.take(reply(command), [(CORRELATION_ID, b"c1")])
    outcome = future.result()
    assert isinstance(outcome, Accepted)
    assert (outcome.command_id, outcome.version, outcome.repeat) == (command.command_id, 1, False)


async def test_replies_for_others_are_passed_over() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    command, future = waiting(client, b"mine")
    client.take(reply(command), [(CORRELATION_ID, b"someone-elses")])
    client.take(reply(command), [])
    client.take(b"\xff not json", [(CORRELATION_ID, b"someone-elses")])
    assert not future.done()


async def test_what_is_not_a_reply_fails_in_a_way_the_reader_skips() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    waiting(client, b"c1")
    for value in (b"\xff not json", b"{}", b'{"command_id": "not-a-uuid"}'):
        with pytest.raises(ValueError, match=r"\w"):
            client.take(value, [(CORRELATION_ID, b"c1")])


async def test_a_reply_naming_another_command_is_not_taken() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    command, future = waiting(client, b"c1")
    with pytest.raises(ReplyMismatch):
        client.take(reply(command, command_id=str(uuid4())), [(CORRELATION_ID, b"c1")])
    with pytest.raises(ReplyMismatch):
        client.take(reply(command, tenant_id="other"), [(CORRELATION_ID, b"c1")])
    assert not future.done()


async def test_a_reply_to_another_copy_of_the_command_is_not_taken() -> None:
    # Whoever reads the commands topic sees the correlation_id, and can send a copy of the
    # command under another key (answered dead-lettered) or as a dry run (answered with a
    # preview): the reply carries the digest of that copy, not of what this client sent.
    client = CommandClient("unused:9092", tenant_id="t")
    command, future = waiting(client, b"c1")
    copy = request_digest(b"another-key", _record(command)[1])
    forged = reply(command, outcome="dead_lettered", accepted=False, request_digest=copy)
    with pytest.raises(ReplyMismatch, match="another copy"):
        client.take(forged, [(CORRELATION_ID, b"c1")])
    assert not future.done()
    client.take(reply(command), [(CORRELATION_ID, b"c1")])
    assert isinstance(future.result(), Accepted)


async def test_refusals_and_previews_become_their_outcomes() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    command, refused = waiting(client, b"r")
    error = {"error_type": "conflict", "error_code": "invalid_status", "message": "no"}
    client.take(
        reply(command, outcome="rejected", accepted=False, events=[], errors=[error], repeat=True),
        [(CORRELATION_ID, b"r")],
    )
    outcome = refused.result()
    assert isinstance(outcome, Refused)
    assert (outcome.outcome, outcome.repeat, outcome.errors[0].error_code) == (
        "rejected",
        True,
        "invalid_status",
    )

    command, previewed = waiting(client, b"p")
    preview = {
        "command_id": str(command.command_id),
        "type": command.type,
        "tenant_id": "t",
        "purchase_order_id": "PO-1",
        "would_accept": True,
        "events": [{"type": "purchase_order.created", "version": 1, "data": details()}],
        "movements": [],
        "errors": [],
        "previewed_at": datetime.now(UTC).isoformat(),
    }
    client.take(
        reply(command, outcome="previewed", accepted=False, events=[], preview=preview),
        [(CORRELATION_ID, b"p")],
    )
    outcome = previewed.result()
    assert isinstance(outcome, Previewed)
    assert outcome.would_accept


async def test_replies_of_a_later_contract_version_answer_with_what_this_one_knows() -> None:
    """A service on a later contract: a new optional field, a new event type, a new error code
    and a new outcome. The client built on this contract answers every request anyway."""
    client = CommandClient("unused:9092", tenant_id="t")
    command, accepted = waiting(client, b"a")
    archived = {
        "event_id": str(uuid4()),
        "type": "purchase_order.archived",  # a type this version does not know
        "version": 2,
        "document_id": "PO-1",
        "archive": "cold",  # a field this version does not know
    }
    client.take(reply(command, served_by="eu-1", events=[archived]), [(CORRELATION_ID, b"a")])
    outcome = accepted.result()
    assert isinstance(outcome, Accepted)
    assert [(e.type, e.version) for e in outcome.events] == [("purchase_order.archived", 2)]

    command, refused = waiting(client, b"r")
    known = {"error_type": "conflict", "error_code": "invalid_status", "message": "no"}
    new = {"error_type": "conflict", "error_code": "quota_exceeded", "message": "later"}
    client.take(
        reply(command, outcome="rejected", accepted=False, events=[], errors=[known, new]),
        [(CORRELATION_ID, b"r")],
    )
    outcome = refused.result()
    assert isinstance(outcome, Refused)
    assert [e.error_code for e in outcome.errors] == ["invalid_status"]
    [unknown] = outcome.unrecognised
    assert unknown.raw["error_code"] == "quota_exceeded"

    command, deferred = waiting(client, b"d")
    client.take(
        reply(command, outcome="deferred", accepted=False, events=[]), [(CORRELATION_ID, b"d")]
    )
    outcome = deferred.result()
    assert isinstance(outcome, Refused)  # not applied: `accepted` decides
    assert outcome.outcome == "deferred"


class RecordedKafkaClient:
    """Stands in for aiokafka's producer, consumer and admin client, keeping the options each
    was made with; the reply topic exists but has no partitions, so start() gives up early."""

    made: list[dict[str, Any]]

    def __init__(self, *topics: str, **options: Any) -> None:
        self.made.append(options)

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...

    async def list_topics(self) -> list[str]:
        return ["replies.t"]

    async def topics(self) -> set[str]:
        return {"replies.t"}

    def partitions_for_topic(self, topic: str) -> None:
        return None


@pytest.mark.parametrize(
    ("given", "expected"), [(None, "order-lifecycle-client"), ("billing", "billing")]
)
async def test_every_kafka_client_it_opens_carries_its_client_id(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(RecordedKafkaClient, "made", made, raising=False)
    for name in ("AIOKafkaAdminClient", "AIOKafkaProducer", "AIOKafkaConsumer"):
        monkeypatch.setattr(f"contract_tools.client.{name}", RecordedKafkaClient)
    client = (
        CommandClient("unused:9092", tenant_id="t")
        if given is None
        else CommandClient("unused:9092", tenant_id="t", client_id=given)
    )
    with pytest.raises(LookupError):
        await client.start()
    assert len(made) == 3, "admin, producer and consumer"
    assert {options["client_id"] for options in made} == {expected}
