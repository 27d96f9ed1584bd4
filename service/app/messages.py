"""The messages that leave the service whatever the family: rejections, events, movements, dead
letters, previews. Pure builders; service/app/answers.py decides which a message gets."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any, Protocol
from uuid import UUID, uuid5

from contracts.common import ErrorDetail
from contracts.headers import (
    AUTHORIZATION,
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TYPE,
    CLOUDEVENTS_MOVEMENT_SOURCE,
    CLOUDEVENTS_MOVEMENT_TYPE,
    CLOUDEVENTS_SPEC_VERSION,
    CONTENT_TYPE,
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_KEY,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    EVENT_TYPE,
    JSON_CONTENT_TYPE,
    cloudevents_source,
)
from contracts.inventory import movement_key
from service.app import provenance
from service.app.family import Decided, Family
from service.app.incoming import IncomingMessage
from service.app.parse import Identity, ValidCommand
from service.app.ports import Claims, OutboxMessage, RecordedActor
from service.app.wire_json import Fields, wire_json
from service.domain.problems import Problem
from service.domain.stock import Movement
from service.domain.values import frozen


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
        # A dry run changes no document, so it has no state to show (nor a tombstone, which
        # has no body): a preview lists its events, movements and errors only.
        if message.topic == family.topics.state or message.value is None:
            continue
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


def event_actor(actor: RecordedActor | None) -> Fields | None:
    """Who acted, as events tell it (contracts.common.EventActor): type, id and whether a token
    proved it (the issuer stays in history)."""
    if actor is None:
        return None
    return {"type": actor.type, "id": actor.id, "verified": actor.issuer is not None}


Headers = tuple[tuple[str, bytes], ...]


class EventModel(Protocol):
    """A contract event model instance (contracts.common.EventMetadata and a type)."""

    @property
    def event_id(self) -> UUID: ...

    @property
    def type(self) -> str: ...

    @property
    def occurred_at(self) -> datetime: ...

    def model_dump_json(self) -> str: ...


@frozen
class WireEvent:
    """An event ready to publish: the facts its headers repeat, and its JSON body."""

    type: str
    event_id: UUID
    occurred_at: datetime
    body: bytes

    @classmethod
    def of(cls, event: EventModel) -> WireEvent:
        """An event built as its contract model (rare ones, such as erasure receipts)."""
        body = event.model_dump_json().encode()
        return cls(event.type, event.event_id, event.occurred_at, body)


def event_message(family: Family[Any], document_id: str, event: WireEvent) -> OutboxMessage:
    """An event on its family's events topic, keyed by its document, with event_headers."""
    key = document_id.encode()
    return OutboxMessage(
        family.topics.events, key, event.body, event_headers(family.name, key, event)
    )


def event_headers(family: str, document_id: bytes, event: WireEvent) -> Headers:
    """Its type, for routing without parsing (EVENT_TYPE, kept for the consumers that read it),
    then the same facts as CloudEvents attributes."""
    event_type = event.type.encode()
    return (
        (EVENT_TYPE, event_type),
        *_cloudevent(
            uuid_text(event.event_id),
            _event_source(family),
            event_type,
            event.occurred_at,
            document_id,
        ),
    )


@cache
def _event_source(family: str) -> bytes:
    # A handful of families: each one's source is encoded once, not once per event.
    return cloudevents_source(family).encode()


_SPEC_VERSION = (CE_SPECVERSION, CLOUDEVENTS_SPEC_VERSION.encode())
_JSON = (CONTENT_TYPE, JSON_CONTENT_TYPE.encode())
_MOVEMENT_SOURCE = CLOUDEVENTS_MOVEMENT_SOURCE.encode()
_MOVEMENT_TYPE = CLOUDEVENTS_MOVEMENT_TYPE.encode()


def _cloudevent(
    event_id: bytes, source: bytes, event_type: bytes, time: datetime, subject: bytes
) -> Headers:
    """CloudEvents binary content mode (contracts.headers.CLOUDEVENTS): the attributes as
    headers, built from values the caller already has; the value stays the JSON body as is."""
    return (
        _SPEC_VERSION,
        (CE_ID, event_id),
        (CE_SOURCE, source),
        (CE_TYPE, event_type),
        (CE_TIME, rfc3339(time)),
        (CE_SUBJECT, subject),
        _JSON,
    )


def rfc3339(moment: datetime) -> bytes:
    """An aware datetime as RFC 3339, UTC written `Z` as pydantic writes it in the body, so the
    header and `occurred_at` read the same. The service's clock is always aware (utc_now)."""
    # The offset is part of the key: equal instants compare equal whatever their offsets, but
    # the text keeps the offset the body shows.
    return _formatted(moment, moment.utcoffset())


@lru_cache(maxsize=8)
def _formatted(moment: datetime, offset: timedelta | None) -> bytes:
    # Cached: every event and movement of a batch shares one time, formatted once.
    text = moment.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text.encode()


def uuid_text(value: UUID) -> bytes:
    """`str(value).encode()`, in half the time: str(UUID) formats through a 128-bit int."""
    digits = value.bytes.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}".encode()


def movement_source(source_type: str, document_id: str, version: int, event_id: UUID) -> Fields:
    """A movement's source (contracts.inventory.MovementSource): the change that caused it."""
    return {"type": source_type, "id": document_id, "version": version, "event_id": event_id}


def movement_message(
    topic: str,
    tenant_id: str,
    movement: Movement,
    source: Fields,
    reason: str,
    occurred_at: datetime,
    derived_id: Callable[[UUID, str], UUID] = uuid5,
) -> OutboxMessage:
    """A movement (contracts.inventory.InventoryMovement) keyed by its stock item, with
    CloudEvents headers like an event's; `source` from movement_source. `derived_id` is
    `uuid5` or what makes the same ids faster."""
    key = movement_key(tenant_id, movement.warehouse_id, movement.sku)
    # Derived from the event, so a movement keeps its id however often it is published.
    movement_id = derived_id(
        source["event_id"], f"{movement.bucket}/{movement.warehouse_id}/{movement.sku}"
    )
    body = wire_json(
        {
            "movement_id": movement_id,
            "tenant_id": tenant_id,
            "warehouse_id": movement.warehouse_id,
            "sku": movement.sku,
            "bucket": movement.bucket.value,
            "quantity": movement.quantity,
            "reason": reason,
            "source": source,
            "occurred_at": occurred_at,
        }
    )
    headers = _cloudevent(
        uuid_text(movement_id),
        _MOVEMENT_SOURCE,
        _MOVEMENT_TYPE,
        occurred_at,
        f"{movement.warehouse_id}/{movement.sku}".encode(),
    )
    return OutboxMessage(topic, key.encode(), body, headers)
