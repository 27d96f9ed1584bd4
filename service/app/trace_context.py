"""W3C trace context on the way through: read from a command's headers, carried onto every
answer, so the producer's trace reaches whoever consumes the outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from contracts.headers import TRACE_CONTEXT, TRACEPARENT
from service.app.ports import OutboxMessage


def with_trace_context(
    messages: Sequence[OutboxMessage], incoming: Sequence[tuple[str, bytes]]
) -> list[OutboxMessage]:
    """The messages with the command's trace context headers added (unchanged without any)."""
    context = tuple(
        (name, value)
        for name, value in incoming
        # W3C limits: a traceparent is 55 characters, a tracestate at most 512; anything
        # else is not trace context and is not copied onto every answer.
        if name in TRACE_CONTEXT and len(value) <= 512 and value.isascii()
    )
    if not context:
        return list(messages)
    return [replace(m, headers=(*m.headers, *context)) for m in messages]


def trace_id(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The trace id of a W3C traceparent header (version-traceid-parentid-flags), if valid."""
    for name, value in headers:
        if name == TRACEPARENT:
            parts = value.split(b"-")
            if len(parts) == 4 and len(parts[1]) == 32 and parts[1].isalnum():
                return parts[1].decode("ascii").lower()
    return None
