"""The messages that leave the service whatever the family: rejections, events, movements, dead
letters, previews. Pure builders; service/app/answers.py decides which a message gets."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from contracts.common import ErrorDetail, EventActor
from contracts.headers import (
    AUTHORIZATION,
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_KEY,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    EVENT_TYPE,
)
from contracts.inventory import InventoryMovement, MovementSource, movement_key
from service.app import provenance
from service.app.family import Decided, Family
from service.app.incoming import IncomingMessage
from service.app.parse import Identity, ValidCommand
from service.app.ports import Claims, OutboxMessage, RecordedActor
from service.domain.problems import Problem
from service.domain.stock import Movement


def rejection_message(
    family: Family[Any],
    identity: Identity,
    command_id: UUID,
    problems: Sequence[Problem],
    rejected_at: datetime,
) -> OutboxMessage:
    rejection = family.rejection_model.model_validate(
        {
            "request_id": command_id,
            "command_id": command_id,
            "type": identity.type,
            "tenant_id": identity.tenant_id,
            family.commands.id_field_for(identity.type): identity.document_id,
            "rejected_at": rejected_at,
            "errors": [
                ErrorDetail(
                    error_type=p.error_type.value,
                    error_code=p.code.value,
                    message=p.message,
                    field=p.field,
                )
                for p in problems
            ],
        }
    )
    return OutboxMessage(
        family.topics.rejections,
        (identity.document_id or str(command_id)).encode(),
        rejection.model_dump_json().encode(),
    )


def dead_letter_message(
    family: Family[Any],
    message: IncomingMessage,
    reason: str,
    authority: Claims | None,
    signer: provenance.Signer,
) -> OutboxMessage:
    """The message as received, key and headers included, with why and where from, the
    authority it was admitted with (None: not admitted on a token), signed so that a replay can
    tell it from a letter someone else wrote (families without personal data)."""
    stored = tuple(
        (name, value)
        for name, value in _without_credentials(message.headers)
        if not name.lower().startswith(DEAD_LETTER_PREFIX)
    )
    letter = OutboxMessage(
        family.topics.dead_letters,
        message.key or b"",
        message.value or b"",
        (*stored, *_why_and_where(message, reason), _authority(authority)),
    )
    return provenance.signed_letter(signer, letter)


def _without_credentials(
    headers: Sequence[tuple[str, bytes]],
) -> tuple[tuple[str, bytes], ...]:
    """A token is never stored, not even in a dead letter: a replay carries the authority the
    letter records, never a credential."""
    return tuple((name, value) for name, value in headers if name.lower() != AUTHORIZATION)


def _why_and_where(message: IncomingMessage, reason: str) -> tuple[tuple[str, bytes], ...]:
    # ASCII with backslash escapes: a reason may quote names from the message, and readers of
    # these headers should never meet control characters or invalid UTF-8 in them.
    return (
        (DEAD_LETTER_REASON, reason.encode("ascii", "backslashreplace")[:4000]),
        (DEAD_LETTER_SOURCE, message.source.encode("ascii", "backslashreplace")),
    )


def _authority(claims: Claims | None) -> tuple[str, bytes]:
    # Only what was verified when the command was admitted: a replay carries this and nothing
    # more, so replaying a letter never grants more than its sender had.
    return (DEAD_LETTER_AUTHORITY, provenance.authority_json(claims))


def sealed_dead_letter_envelope(message: IncomingMessage) -> bytes:
    """Everything of the received message that may hold personal data, to be sealed whole."""

    def text(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return json.dumps(
        {
            "key": text(message.key) if message.key is not None else None,
            "headers": [
                [name, text(value)] for name, value in _without_credentials(message.headers)
            ],
            "value": text(message.value or b""),
        }
    ).encode()


def sealed_dead_letter_message(
    family: Family[Any],
    message: IncomingMessage,
    reason: str,
    key_id: UUID,
    sealed: bytes,
    authority: Claims | None,
    signer: provenance.Signer,
) -> OutboxMessage:
    """Why, where from, which key and which authority in the clear; the message itself only
    sealed; all of it signed. The Kafka key is the source position, not the document id the
    sender chose."""
    headers = (
        *_why_and_where(message, reason),
        (DEAD_LETTER_KEY, str(key_id).encode()),
        _authority(authority),
    )
    letter = OutboxMessage(family.topics.dead_letters, message.source.encode(), sealed, headers)
    return provenance.signed_letter(signer, letter)


def preview_message(
    family: Family[Any], cmd: ValidCommand[Any], decided: Decided, previewed_at: datetime
) -> OutboxMessage:
    """What a dry-run command would do, from what deciding it (writing nothing) produced."""
    events: list[dict[str, Any]] = []
    movements: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for message in decided.messages:
        body = json.loads(message.value)
        if message.topic == family.topics.events:
            events.append(
                {"type": body["type"], "version": body["version"], "data": body.get("data")}
            )
        elif message.topic == family.topics.rejections:
            errors += body["errors"]
        else:
            movements.append(body)
    preview = family.preview_model.model_validate(
        {
            "command_id": cmd.command_id,
            "type": cmd.identity.type,
            "tenant_id": cmd.tenant_id,
            family.commands.id_field_for(cmd.identity.type): cmd.document_id,
            "would_accept": decided.accepted,
            "events": events,
            "movements": movements,
            "errors": errors,
            "previewed_at": previewed_at,
        }
    )
    return OutboxMessage(
        family.topics.previews, cmd.document_id.encode(), preview.model_dump_json().encode()
    )


def event_actor(actor: RecordedActor | None) -> EventActor | None:
    """Who acted, as events tell it: type, id and whether a token proved it (the issuer stays
    in history)."""
    if actor is None:
        return None
    return EventActor.model_validate(
        {"type": actor.type, "id": actor.id, "verified": actor.issuer is not None}
    )


def event_message(topic: str, document_id: str, event: Any) -> OutboxMessage:
    """An event keyed by its document, with its type as a header for routing without parsing."""
    return OutboxMessage(
        topic,
        document_id.encode(),
        event.model_dump_json().encode(),
        ((EVENT_TYPE, event.type.encode()),),
    )


def movement_message(
    topic: str,
    tenant_id: str,
    movement: Movement,
    source: MovementSource,
    reason: str,
    occurred_at: datetime,
) -> OutboxMessage:
    key = movement_key(tenant_id, movement.warehouse_id, movement.sku)
    body = InventoryMovement(
        # Derived from the event, so a movement keeps its id however often it is published.
        movement_id=uuid5(
            source.event_id, f"{movement.bucket}/{movement.warehouse_id}/{movement.sku}"
        ),
        tenant_id=tenant_id,
        warehouse_id=movement.warehouse_id,
        sku=movement.sku,
        bucket=movement.bucket.value,
        quantity=movement.quantity,
        reason=reason,
        source=source,
        occurred_at=occurred_at,
    )
    return OutboxMessage(topic, key.encode(), body.model_dump_json().encode())
