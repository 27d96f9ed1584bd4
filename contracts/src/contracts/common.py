"""Building blocks shared by every message: identifiers, actors, rejections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

ERROR_SOURCE = "order-lifecycle-service"


class WireModel(BaseModel):
    """Base of every contract model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"),
]
"""Tenant, document, supplier, warehouse and customer ids: printable, no spaces, at most 64."""


def _no_numeric_timestamps(value: object) -> object:
    if isinstance(value, int | float):
        raise ValueError("dates are ISO 8601 strings with a time zone, e.g. 2025-01-15T00:00:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_numeric_timestamps)]
"""An ISO 8601 date-time with an explicit time zone."""

Text = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
Version = Annotated[int, Field(ge=0, strict=True)]


class Actor(WireModel):
    """Who issued a command."""

    type: Literal["user", "service", "customer", "system"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class EventActor(Actor):
    """Who sent the command an event answers, and whether a token proved it."""

    verified: bool = Field(
        default=False,
        description="True when a verified token named this actor; false when the service took"
        " the command's word for it (AUTH_MODE off or verify, with claimed actors allowed).",
    )


class NoPayload(WireModel):
    """An empty object: the command needs nothing beyond its envelope."""


class CommandMetadata(WireModel):
    """Envelope fields every command carries besides its type, document id and payload."""

    command_id: UUID = Field(description="Idempotency key: re-sending the same command is safe.")
    tenant_id: Identifier
    expected_version: Version | None = Field(
        default=None,
        description="Optimistic concurrency: the document's current version; 0 = must not exist.",
    )
    actor: Actor | None = None
    issued_at: Timestamp | None = None
    dry_run: bool = Field(
        default=False,
        description="Decide against the current state and publish the outcome as a preview on"
        " the family's .previews topic; nothing is written.",
    )


class EventMetadata(WireModel):
    """Envelope fields every event carries besides its type, document id and data."""

    event_id: UUID
    tenant_id: Identifier
    version: Annotated[int, Field(ge=1)] = Field(description="Document version after this change.")
    command_id: UUID = Field(description="The command that caused this event.")
    occurred_at: datetime
    actor: EventActor | None = Field(
        default=None,
        description="Who sent the command: proven by its token when the service verifies"
        " tokens (`verified`), else as the command claimed; absent when it named no one.",
    )


ErrorType = Literal["validation", "not_found", "conflict", "forbidden", "unauthenticated", "system"]
ErrorCode = Literal[
    "invalid_request",
    "not_found",
    "already_exists",
    "invalid_status",
    "version_conflict",
    "idempotency_key_reused",
    "not_editable",
    "has_dependencies",
    "voucher_in_use",
    "already_fulfilled",
    "subject_erased",
    "processing_failed",
    "unauthenticated",
    "forbidden",
    "rate_limited",
]


class ErrorDetail(WireModel):
    """One problem with a command; a rejection lists every problem found."""

    error_source: str = ERROR_SOURCE
    error_type: ErrorType
    error_code: ErrorCode
    message: str
    field: str | None = Field(
        default=None,
        description="Dotted path of the offending field, e.g. payload.products.0.quantity.",
    )


class RejectionMetadata(WireModel):
    """The answer to a command that changed nothing (shaped like ShipStation's error body).

    Each document family adds its own document id field.
    """

    request_id: UUID = Field(description="Equal to command_id.")
    command_id: UUID
    type: str | None = Field(description="The rejected command's type as sent; null if unreadable.")
    tenant_id: str | None
    rejected_at: datetime
    errors: Annotated[list[ErrorDetail], Field(min_length=1)]
