"""The headers each message of the AsyncAPI document really carries, as JSON Schemas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts.headers import (
    AUTHORIZATION,
    BEARER_SCHEME,
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TYPE,
    CLOUDEVENTS,
    CLOUDEVENTS_MOVEMENT_SOURCE,
    CLOUDEVENTS_MOVEMENT_TYPE,
    CLOUDEVENTS_SPEC_VERSION,
    CONTENT_TYPE,
    CORRELATION_ID,
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_KEY,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SIGNATURE,
    DEAD_LETTER_SOURCE,
    EVENT_TYPE,
    JSON_CONTENT_TYPE,
    REPLAY_AUTHORITY,
    REPLAY_SIGNATURE,
    REPLAYED_FROM,
    REPLY_TO,
    TRACEPARENT,
    TRACESTATE,
    cloudevents_source,
)
from service.entrypoints.asyncapi.families import FamilyContract

# --- Headers --------------------------------------------------------------------------------


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


def _headers(properties: Mapping[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema


TRACE_CONTEXT = {
    TRACEPARENT: _text(
        "W3C trace context; carried from a command to every one of its answers.",
        pattern="^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
    ),
    TRACESTATE: _text("W3C trace state, carried like traceparent.", maxLength=512),
}
COMMAND_HEADERS = _headers(
    {
        AUTHORIZATION: _text(
            "The sender's actor token (JWT) for this one command, checked as AUTH_MODE says."
            " Never stored, logged or echoed; see the actorToken security scheme.",
            pattern=f"^{BEARER_SCHEME} [A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$",
        ),
        REPLY_TO: _text(
            "Optional: the topic to send the command's reply to (see the replies channel).",
            pattern="^[A-Za-z0-9._-]{1,249}$",
        ),
        CORRELATION_ID: _text(
            "Optional, beside reply_to: written back on the reply.",
            pattern="^[!-~]{1,128}$",
        ),
        **TRACE_CONTEXT,
        REPLAYED_FROM: _text(
            "Set by `order-service dead-letters replay`: the dead letter's topic/partition/offset."
        ),
        REPLAY_AUTHORITY: _text(
            "Set by the replay command: the authority the command was first admitted with,"
            ' as JSON {"claims": ..., "replayed_by": ...}.'
        ),
        REPLAY_SIGNATURE: _text(
            "Set by the replay command: `<key id>:<hex HMAC>` binding the replay headers to"
            " this command.",
            pattern="^[^:]+:[0-9a-f]{64}$",
        ),
    }
)
OUTCOME_HEADERS = _headers(TRACE_CONTEXT)
"""Rejections, previews and states: only the trace context of the command they answer."""
REPLY_HEADERS = _headers(
    {
        CORRELATION_ID: _text(
            "The command's correlation_id, when it sent one.", pattern="^[!-~]{1,128}$"
        ),
        **TRACE_CONTEXT,
    }
)
DEAD_LETTER_HEADERS = _headers(
    {
        # Copied as they arrived (so no pattern holds), for a replay to send them again.
        **{
            name: _text("The command's, as it arrived.")
            for name in COMMAND_HEADERS["properties"]
            if name != AUTHORIZATION
        },
        DEAD_LETTER_REASON: _text("Why it could not be read or processed (ASCII, escaped)."),
        DEAD_LETTER_SOURCE: _text("Where it was read: topic/partition/offset@timestamp."),
        DEAD_LETTER_KEY: _text(
            "Sealed letters only: the id of the key that seals it.", format="uuid"
        ),
        DEAD_LETTER_AUTHORITY: _text(
            "The verified claims the command was admitted with, as JSON (null: none)."
        ),
        DEAD_LETTER_SIGNATURE: _text(
            "Last: `<key id>:<hex HMAC>` over the topic, key, value and every header before it.",
            pattern="^[^:]+:[0-9a-f]{64}$",
        ),
    },
    required=(DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_AUTHORITY, DEAD_LETTER_SIGNATURE),
)
DEAD_LETTER_HEADERS["description"] = (
    "First the headers the command arrived with (authorization and any x-dead-letter-* a"
    " sender wrote removed; none in the clear on a sealed letter), then the service's own."
)


def _cloudevents(source: str, types: Sequence[str], subject: str) -> dict[str, Any]:
    return {
        CE_SPECVERSION: _text("CloudEvents version.", const=CLOUDEVENTS_SPEC_VERSION),
        CE_ID: _text("The id in the body (event_id; movement_id).", format="uuid"),
        CE_SOURCE: _text("Who produced it.", const=source, format="uri-reference"),
        CE_TYPE: _text("The type in the body.", enum=list(types)),
        CE_TIME: _text("occurred_at, RFC 3339.", format="date-time"),
        CE_SUBJECT: _text(subject, minLength=1),
        CONTENT_TYPE: _text("The value's media type.", const=JSON_CONTENT_TYPE),
    }


def event_headers_schema(family: FamilyContract) -> dict[str, Any]:
    types = family.event_types()
    return _headers(
        {
            EVENT_TYPE: _text("The event's type, for routing without parsing.", enum=types),
            **_cloudevents(cloudevents_source(family.name), types, f"The Kafka key: {family.key}."),
            **TRACE_CONTEXT,
        },
        required=(EVENT_TYPE, *CLOUDEVENTS),
    )


MOVEMENT_HEADERS = _headers(
    {
        **_cloudevents(
            CLOUDEVENTS_MOVEMENT_SOURCE, [CLOUDEVENTS_MOVEMENT_TYPE], "<warehouse_id>/<sku>."
        ),
        **TRACE_CONTEXT,
    },
    required=CLOUDEVENTS,
)
