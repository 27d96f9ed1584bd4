"""Per channel of the AsyncAPI document: the headers, Kafka key and one example of each message,
built with the real models and message builders."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, TypeAdapter

from contracts.headers import (
    AUTHORIZATION,
    BEARER_SCHEME,
    CLOUDEVENTS_MOVEMENT_TYPE,
    CORRELATION_ID,
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_SIGNATURE,
    REPLY_TO,
    TRACEPARENT,
)
from contracts.replies import CommandReply, EventReceipt, ReplyOutcome, request_digest
from contracts.topics import INVENTORY_MOVEMENTS
from service.app.messages import WireEvent, event_headers, movement_message, movement_source
from service.app.ports import OutboxMessage
from service.domain.values import frozen
from service.entrypoints.asyncapi.families import FAMILIES, ORDER_CONTRACT, REPLIES, FamilyContract
from service.entrypoints.asyncapi.headers import (
    COMMAND_HEADERS,
    DEAD_LETTER_HEADERS,
    MOVEMENT_HEADERS,
    OUTCOME_HEADERS,
    REPLY_HEADERS,
    event_headers_schema,
)

# --- Messages: headers, key and example per channel -----------------------------------------


@frozen
class Described:
    """What a channel's message carries besides its payload."""

    headers: dict[str, Any] | None
    key: dict[str, Any]
    """The Kafka key's schema."""
    example: dict[str, Any]
    """One AsyncAPI Message Example Object: headers and payload, as published."""
    correlated: bool = False
    """Whether it carries correlation_id (commands, replies)."""
    content_type: str | None = None
    """When not the document's default (application/json)."""


def complete_messages(document: dict[str, Any], described: Mapping[str, Described]) -> None:
    messages = document["components"]["messages"]
    undescribed = set(document["channels"]) ^ set(described)
    if undescribed:
        raise ValueError(f"channels without key, headers and example: {sorted(undescribed)}")
    for name, channel in document["channels"].items():
        about = described[name]
        for reference in channel["messages"].values():
            message = messages[reference["$ref"].rsplit("/", 1)[-1]]
            # FastStream declares a correlation_id on every message; only these carry one.
            message.pop("correlationId", None)
            if about.correlated:
                message["correlationId"] = {
                    "description": "Set by the command's sender, copied onto its reply.",
                    "location": f"$message.header#/{CORRELATION_ID}",
                }
            if about.headers is None:
                message.pop("headers", None)
            else:
                message["headers"] = about.headers
            if about.content_type is not None:
                message["contentType"] = about.content_type
            message["bindings"] = {"kafka": {"key": about.key, "bindingVersion": "0.4.0"}}
            message["examples"] = [about.example]


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _key(description: str, example: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "examples": [example], **schema}


# Fixed values, so the document is the same on every run.
TENANT = "tenant-a"
AT = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
COMMAND_ID = UUID("3f0c8a52-6a1e-4d43-9f55-0d3e1b7c2a10")
EVENT_ID = UUID("b8e6d1f4-2c7a-4e59-a1d3-7f42c9e0b615")
TRACE = {TRACEPARENT: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
CORRELATION = "req-7f3a"
TOKEN = (
    f"{BEARER_SCHEME} eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJqdGkiOiIzZjBjOGE1Mi02YTFlLTRkNDMtOWY1NS0wZDNlMWI3YzJhMTAifQ.c2lnbmF0dXJl"
)
SIGNATURE = "k1:" + "5d41402abc4b2a76b9719d911017c592" * 2


def _json(model: BaseModel) -> Any:
    """A model exactly as the service publishes it (model_dump_json), as JSON data."""
    return json.loads(model.model_dump_json())


def _example(name: str, summary: str, payload: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "summary": summary, "headers": dict(headers), "payload": payload}


def _decoded(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


def _family_channels(family: FamilyContract) -> dict[str, Described]:
    topics, prefix, document_id = family.topics, family.type_prefix, family.example_document
    before, after = family.example_statuses
    ids = {"tenant_id": TENANT, family.id_field: document_id}
    command = TypeAdapter(family.command).validate_python(
        {
            "type": f"{prefix}.change_status",
            "command_id": COMMAND_ID,
            **ids,
            "expected_version": 1,
            "payload": {"status": after},
        }
    )
    event = TypeAdapter(family.event).validate_python(
        {
            "type": f"{prefix}.status_changed",
            "event_id": EVENT_ID,
            **ids,
            "version": 2,
            "command_id": COMMAND_ID,
            "occurred_at": AT,
            "data": {"from_status": before, "to_status": after},
        }
    )
    movement = _movement(family)
    rejection = family.rejection.model_validate(
        {
            "request_id": COMMAND_ID,
            "command_id": COMMAND_ID,
            "type": f"{prefix}.change_status",
            **ids,
            "rejected_at": AT,
            "errors": [
                {
                    "error_type": "validation",
                    "error_code": "invalid_status",
                    "message": f"Cannot transition from '{after}' to '{before}'",
                    "field": "payload.status",
                }
            ],
        }
    )
    preview = family.preview.model_validate(
        {
            "command_id": COMMAND_ID,
            "type": f"{prefix}.change_status",
            **ids,
            "would_accept": True,
            "events": [{"type": event.type, "version": 2, "data": _json(event)["data"]}],
            "movements": [json.loads(movement.value or b"")],
            "errors": [],
            "previewed_at": AT,
        }
    )
    state = family.state.model_validate(
        {
            **ids,
            "version": 2,
            "event_id": EVENT_ID,
            "event_type": event.type,
            "updated_at": AT,
            "snapshot": family.example_snapshot,
        }
    )
    letter = family.example_dead_letter
    by_document = _key(f"{_capitalized(family.key)}.", document_id)
    return {
        topics.commands: Described(
            COMMAND_HEADERS,
            _key(
                f"{_capitalized(family.key)}: the commands of one document keep their order.",
                document_id,
            ),
            _example(
                f"{prefix}.change_status",
                "A status change, with a token, asking for a reply.",
                _json(command),
                {AUTHORIZATION: TOKEN, REPLY_TO: f"{REPLIES}.{TENANT}", CORRELATION_ID: CORRELATION}
                | TRACE,
            ),
            correlated=True,
        ),
        topics.events: Described(
            event_headers_schema(family),
            by_document,
            _example(
                event.type,
                "The event of that change.",
                _json(event),
                _decoded(event_headers(family.name, document_id.encode(), WireEvent.of(event)))
                | TRACE,
            ),
        ),
        topics.rejections: Described(
            OUTCOME_HEADERS,
            _key(
                f"{_capitalized(family.key)}; the command_id when the command named none.",
                document_id,
            ),
            _example(
                f"{prefix}.rejection", "The same command sent again.", _json(rejection), TRACE
            ),
        ),
        topics.previews: Described(
            OUTCOME_HEADERS,
            by_document,
            _example(f"{prefix}.preview", "The command sent with dry_run.", _json(preview), TRACE),
        ),
        topics.dead_letters: Described(
            DEAD_LETTER_HEADERS,
            _key(
                "The command's key as it arrived (empty if it had none); on a sealed letter,"
                " where the command was read: topic/partition/offset@timestamp.",
                letter["key"],
            ),
            _example(
                f"{prefix}.dead_letter",
                letter["summary"],
                letter["payload"],
                {
                    **letter["headers"],
                    DEAD_LETTER_AUTHORITY: "null",
                    DEAD_LETTER_SIGNATURE: SIGNATURE,
                },
            ),
            content_type="application/octet-stream",
        ),
        topics.state: Described(
            OUTCOME_HEADERS,
            _key("<tenant_id>/<document id>.", f"{TENANT}/{document_id}"),
            _example(f"{prefix}.state", "The document after that change.", _json(state), TRACE),
        ),
    }


def _movement(family: FamilyContract) -> OutboxMessage:
    """The movement of the family's example change, built as the service builds it."""
    source = movement_source(family.type_prefix, family.example_document, 2, EVENT_ID)
    reason = f"{family.type_prefix}.status_changed"
    return movement_message(
        INVENTORY_MOVEMENTS, TENANT, family.example_movement, source, reason, AT
    )


def described_channels() -> dict[str, Described]:
    channels: dict[str, Described] = {}
    for family in FAMILIES:
        channels |= _family_channels(family)
    movement = _movement(ORDER_CONTRACT)
    reply = CommandReply(
        command_id=COMMAND_ID,
        tenant_id=TENANT,
        type="purchase_order.change_status",
        document_id="PO-1001",
        outcome=ReplyOutcome.ACCEPTED,
        accepted=True,
        request_digest=request_digest(b"PO-1001", b'{"type": "purchase_order.change_status"}'),
        events=[
            EventReceipt(
                event_id=EVENT_ID,
                type="purchase_order.status_changed",
                version=2,
                document_id="PO-1001",
            )
        ],
        replied_at=AT,
    )
    channels[INVENTORY_MOVEMENTS] = Described(
        MOVEMENT_HEADERS,
        _key(
            "<tenant_id>/<warehouse_id>/<sku>: movements of one stock item keep their order.",
            movement.key.decode(),
        ),
        _example(
            CLOUDEVENTS_MOVEMENT_TYPE,
            "Stock reserved when an order became ready.",
            json.loads(movement.value or b""),
            _decoded(movement.headers) | TRACE,
        ),
    )
    channels[REPLIES] = Described(
        REPLY_HEADERS,
        _key("The command_id.", str(COMMAND_ID), format="uuid"),
        _example(
            "accepted",
            "The reply to the status change: accepted, with its event.",
            _json(reply),
            {CORRELATION_ID: CORRELATION} | TRACE,
        ),
        correlated=True,
    )
    return channels
