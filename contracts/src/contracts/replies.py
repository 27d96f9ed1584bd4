"""Replies: the answer to one command, on the topic its sender named in the `reply_to` header.

A command that carries `reply_to` (and, usually, `correlation_id`: FastStream's request
convention) gets exactly one reply on that topic for every copy of it the service reads: the
first answer, and for a duplicate (a redelivery, or a re-send after the sender restarted) the
same outcome again, rebuilt from what the service stored, marked `repeat`. Replies are keyed by
command_id, carry the correlation_id back as a header and the digest of the copy they answer;
they name events by id, type and version, never their data (a dry run's reply carries its
preview, as the previews topic does).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.common import ErrorDetail, WireModel


class ReplyOutcome(StrEnum):
    ACCEPTED = "accepted"
    """Decided and applied: `events` lists what it caused."""
    REJECTED = "rejected"
    """Refused (a rule, the token gate, a reused command_id): nothing changed; see `errors`."""
    DEAD_LETTERED = "dead_lettered"
    """Invalid: nothing changed; the message was set aside in the dead-letter topic."""
    PARKED = "parked"
    """Could not be processed: nothing changed; set aside for an operator."""
    PREVIEWED = "previewed"
    """A dry run: nothing changed; `preview` says what it would do."""


class EventReceipt(WireModel):
    """One event a command caused, by reference: its data is on the events topic."""

    event_id: UUID
    type: str
    version: Annotated[int, Field(ge=1)]
    document_id: str = Field(
        description="The document the event is about (a customer.redact touches many orders)."
    )


MAX_REPLY_ERRORS = 20
"""A reply lists at most this many errors; the rejection on the rejections topic has them all."""
MAX_REPLY_EVENTS = 100
"""A reply names at most this many events (a customer.redact may cause thousands)."""
MAX_REPLY_TEXT = 200
"""Error messages and fields in a reply are cut to this many characters."""


def request_digest(key: bytes | None, value: bytes | None) -> str:
    """SHA-256 (hex) over a command's Kafka key and value as sent: a reply carries the digest of
    the copy it answers, so a sender takes only replies to what it sent itself (its
    correlation_id is visible to whoever reads the commands topic, and a copy of its command
    under another key or with another body is answered too)."""
    hashed = hashlib.sha256()
    hashed.update(len(key or b"").to_bytes(4, "big"))
    hashed.update(key or b"")
    hashed.update(value or b"")
    return hashed.hexdigest()


class CommandReply(WireModel):
    command_id: UUID
    tenant_id: str
    type: str | None = Field(description="The command's type as sent; null if unreadable.")
    document_id: str | None = Field(description="The document (or customer) the command named.")
    outcome: ReplyOutcome
    accepted: bool = Field(description="True only when the command was applied.")
    repeat: bool = Field(
        default=False,
        description="This copy was a duplicate: the outcome is the one decided the first time,"
        " and nothing changed now.",
    )
    request_digest: str = Field(
        description="SHA-256 (hex) of the Kafka key and value of the copy answered:"
        " len(key) as 4 bytes big-endian, the key, the value (contracts.replies.request_digest)."
    )
    events: Annotated[list[EventReceipt], Field(max_length=MAX_REPLY_EVENTS)] = Field(
        default_factory=list,
        description=f"Accepted: the events it caused, in order (the first {MAX_REPLY_EVENTS}).",
    )
    events_omitted: Annotated[int, Field(ge=0)] = Field(
        default=0, description="How many more events it caused (on the events topic)."
    )
    errors: Annotated[list[ErrorDetail], Field(max_length=MAX_REPLY_ERRORS)] = Field(
        default_factory=list,
        description=f"Refused: the problems found (the first {MAX_REPLY_ERRORS}).",
    )
    errors_omitted: Annotated[int, Field(ge=0)] = Field(
        default=0, description="How many more errors the rejection lists."
    )
    preview: dict[str, Any] | None = Field(
        default=None,
        description="A dry run: the preview as published on the family's .previews topic"
        " (its events' data included).",
    )
    replied_at: datetime


COMMAND_REPLY: TypeAdapter[CommandReply] = TypeAdapter(CommandReply)
