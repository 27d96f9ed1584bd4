"""The AsyncAPI document says what the service really does: every message has its Kafka key and
a valid example, declares only headers the service sends (or, on commands, reads), and the
servers, security and reply channel are there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contracts import headers
from contracts.inventory import InventoryMovement
from contracts.orders import ORDER_EVENT
from contracts.purchase_orders import PURCHASE_ORDER_EVENT
from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.app.messages import event_headers, movement_message
from service.domain.stock import Bucket, Movement
from service.entrypoints.asyncapi import specification
from service.entrypoints.asyncapi.families import REPLIES

DOCUMENT = specification()
MESSAGES: dict[str, Any] = DOCUMENT["components"]["messages"]

HEADER_NAMES = {
    value
    for name, value in vars(headers).items()
    if name.isupper() and isinstance(value, str) and re.fullmatch("[a-z][a-z0-9_-]*", value)
}
"""Every header name contracts.headers spells (its other constants are values: `Bearer`,
`1.0`, `application/json`, sources and types)."""


def channel_messages() -> Iterator[tuple[str, dict[str, Any]]]:
    for channel_name, channel in DOCUMENT["channels"].items():
        for reference in channel["messages"].values():
            yield channel_name, MESSAGES[reference["$ref"].rsplit("/", 1)[-1]]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema inside the document: its $refs point into the components."""
    return Draft202012Validator(
        {**schema, "components": DOCUMENT["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def declared(channel: str) -> set[str]:
    [message] = [m for name, m in channel_messages() if name == channel]
    return set(message.get("headers", {}).get("properties", {}))


ALL_MESSAGES = list(channel_messages())


@pytest.mark.parametrize(("channel", "message"), ALL_MESSAGES, ids=[c for c, _ in ALL_MESSAGES])
def test_every_message_has_a_key_and_one_example_that_validates(
    channel: str, message: dict[str, Any]
) -> None:
    key = message["bindings"]["kafka"]["key"]
    assert key["type"] == "string"
    assert key["description"]
    for example_key in key["examples"]:
        validator(key).validate(example_key)

    [example] = message["examples"]
    validator(message["payload"]).validate(example["payload"])
    header_schema = message.get("headers", {"type": "object", "properties": {}})
    validator(header_schema).validate(example["headers"])
    assert set(example["headers"]) <= set(header_schema["properties"]), "an undeclared header"


@pytest.mark.parametrize(("channel", "message"), ALL_MESSAGES, ids=[c for c, _ in ALL_MESSAGES])
def test_no_message_declares_a_header_contracts_headers_does_not_name(
    channel: str, message: dict[str, Any]
) -> None:
    names = set(message.get("headers", {}).get("properties", {}))
    assert names <= HEADER_NAMES, names - HEADER_NAMES
    correlation: dict[str, Any] | None = message.get("correlationId")
    if channel.endswith(".commands") or channel == REPLIES:
        assert correlation is not None
        assert correlation["location"] == f"$message.header#/{headers.CORRELATION_ID}"
        assert headers.CORRELATION_ID in names
    else:
        assert correlation is None, "FastStream's default: nobody sends it here"


def payload_of(channel: str) -> Any:
    [message] = [m for name, m in channel_messages() if name == channel]
    return message["examples"][0]["payload"]


@pytest.mark.parametrize(
    ("family", "adapter"), [(PURCHASE_ORDERS, PURCHASE_ORDER_EVENT), (ORDERS, ORDER_EVENT)]
)
def test_events_declare_exactly_the_headers_the_builder_writes(family: str, adapter: Any) -> None:
    topics = DocumentTopics.for_family(family)
    event = adapter.validate_python(payload_of(topics.events))
    written = {name for name, _ in event_headers(family, b"D-1", event)}
    assert declared(topics.events) == written | set(headers.TRACE_CONTEXT)
    assert set(headers.CLOUDEVENTS) <= written


def test_movements_declare_exactly_the_headers_the_builder_writes() -> None:
    body = InventoryMovement.model_validate(payload_of(INVENTORY_MOVEMENTS))
    message = movement_message(
        INVENTORY_MOVEMENTS,
        body.tenant_id,
        Movement(body.warehouse_id, body.sku, Bucket(body.bucket), body.quantity),
        body.source.model_dump(),
        body.reason,
        body.occurred_at,
    )
    assert declared(INVENTORY_MOVEMENTS) == {n for n, _ in message.headers} | set(
        headers.TRACE_CONTEXT
    )
    assert headers.EVENT_TYPE not in declared(INVENTORY_MOVEMENTS), "movements never had it"


@pytest.mark.parametrize("family", [PURCHASE_ORDERS, ORDERS])
def test_answers_without_headers_of_their_own_declare_only_the_trace_context(
    family: str,
) -> None:
    topics = DocumentTopics.for_family(family)
    for channel in (topics.rejections, topics.previews, topics.state):
        assert declared(channel) == set(headers.TRACE_CONTEXT), channel
    assert declared(REPLIES) == {headers.CORRELATION_ID, *headers.TRACE_CONTEXT}
    assert {headers.AUTHORIZATION, headers.REPLY_TO} <= declared(topics.commands)
    assert headers.AUTHORIZATION not in declared(topics.dead_letters), "never stored"


def test_security_schemes_cover_what_the_service_connects_with_and_the_actor_token() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {
        "plain",
        "scramSha256",
        "scramSha512",
        "X509",
        "http",
    }
    token = next(s for s in schemes.values() if s["type"] == "http")
    assert (token["scheme"], token["bearerFormat"]) == ("bearer", "JWT")
    for server in DOCUMENT["servers"].values():
        for reference in server["security"]:
            assert reference["$ref"].rsplit("/", 1)[-1] in schemes
    for family in (PURCHASE_ORDERS, ORDERS):
        operation = DOCUMENT["operations"][DocumentTopics.for_family(family).commands]
        assert operation["security"] == [{"$ref": "#/components/securitySchemes/actorToken"}]


def test_servers_are_described_by_variables() -> None:
    servers = DOCUMENT["servers"]
    assert {s["protocol"] for s in servers.values()} == {"kafka", "kafka-secure"}
    for server in servers.values():
        placeholders = set(re.findall(r"{(\w+)}", server["host"]))
        assert placeholders == {"host", "port"}
        assert set(server["variables"]) == placeholders
        assert all(v["default"] for v in server["variables"].values())
    for channel in DOCUMENT["channels"].values():
        assert "servers" not in channel, "every channel is on every server"


def test_commands_are_answered_on_the_reply_topic_they_name() -> None:
    replies = DOCUMENT["channels"][REPLIES]
    assert replies["address"] == "replies.{tenant_id}"
    assert set(replies["parameters"]) == {"tenant_id"}
    [reply] = [m for name, m in channel_messages() if name == REPLIES]
    assert reply["payload"] == {"$ref": "#/components/schemas/CommandReply"}
    assert reply["bindings"]["kafka"]["key"]["format"] == "uuid", "keyed by command_id"
    for family in (PURCHASE_ORDERS, ORDERS):
        operation = DOCUMENT["operations"][DocumentTopics.for_family(family).commands]
        assert operation["reply"]["address"]["location"] == "$message.header#/reply_to"
        assert operation["reply"]["channel"] == {"$ref": f"#/channels/{REPLIES}"}


@pytest.mark.parametrize("family", [PURCHASE_ORDERS, ORDERS])
def test_state_topics_are_compacted_keyed_by_tenant_and_document_and_take_tombstones(
    family: str,
) -> None:
    topic = DocumentTopics.for_family(family).state
    channel = DOCUMENT["channels"][topic]
    assert channel["bindings"]["kafka"]["topicConfiguration"] == {"cleanup.policy": ["compact"]}
    [message] = [m for name, m in channel_messages() if name == topic]
    state = payload_of(topic)
    id_field = "purchase_order_id" if family == PURCHASE_ORDERS else "order_id"
    key_examples = message["bindings"]["kafka"]["key"]["examples"]
    assert key_examples == [f"{state['tenant_id']}/{state[id_field]}"]
    validator(message["payload"]).validate(None)
