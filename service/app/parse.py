"""The edge: raw bytes become a validated domain command, or an InvalidCommand listing why not.

Nothing here raises on bad input; every problem becomes data so the consumer never stops.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Generic, TypeVar
from uuid import UUID

import orjson
from pydantic import TypeAdapter, ValidationError

from contracts.common import CommandMetadata
from service.app.incoming import IncomingMessage
from service.app.ports import Claims, RecordedActor
from service.app.strict_json import UnreadableBody, is_storable, read_json, unstorable_text
from service.domain.permissions import Access, Authority
from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen

C = TypeVar("C")


@frozen
class CommandSpec(Generic[C]):
    """How one document family's commands are read: its id field, wire union and translation."""

    id_field: str
    adapter: TypeAdapter[Any]
    to_domain: Callable[[Any], C]
    authority: Authority
    """Who may send these commands: scopes, the role table, destructive types."""
    id_fields: Mapping[str, str] = field(default_factory=dict)
    """Command types keyed by another id than `id_field` (customer.redact: customer_id)."""
    personal_paths: tuple[str, ...] = ()
    """Fields holding personal data: their errors name the rule, never a part of the value."""
    with_actor: Callable[[C, str, str], C] | None = None
    """Puts an actor proven by a token (type, id) into a domain command, for families whose
    decisions depend on who acts."""
    access: Callable[[str, C], Access] = lambda command_type, _: Access(command_type)
    """What a command of this type asks to do, as the role table reads it (the status it moves
    a document to, the parts it changes)."""

    def id_field_for(self, command_type: str | None) -> str:
        return self.id_fields.get(command_type or "", self.id_field)


@frozen
class Identity:
    """What could be read of a command's envelope, even when the rest is invalid."""

    command_id: UUID | None
    type: str | None
    tenant_id: str | None
    document_id: str | None
    subject: str | None = None
    """The customer the body names, if any: erasing them destroys its dead letter too."""
    order_id: str | None = None
    """The order the body names, if any: erasing it destroys its dead letter too."""


UNREADABLE = Identity(None, None, None, None)


@frozen
class ValidCommand(Generic[C]):
    identity: Identity
    command_id: UUID
    tenant_id: str
    document_id: str
    command: C
    request_hash: bytes
    actor: RecordedActor | None = None
    claims: Claims | None = None
    """The verified token claims it was admitted on; None when admitted on its own word."""
    dry_run: bool = False
    """Decide and answer with a preview; write nothing."""


@frozen
class InvalidCommand:
    identity: Identity
    problems: tuple[Problem, ...]
    request_hash: bytes

    @property
    def reason(self) -> str:
        return "; ".join(f"{p.field or 'message'}: {p.message}" for p in self.problems)


ParsedCommand = ValidCommand[C] | InvalidCommand


def parse_command(
    message: IncomingMessage, max_bytes: int, spec: CommandSpec[C]
) -> ValidCommand[C] | InvalidCommand:
    raw = message.value or b""
    try:
        # A body over the limit is still read, to name its command in the rejection.
        body, may_hold_unstorable = read_json(raw, with_jiter=len(raw) <= max_bytes)
    except UnreadableBody as error:
        return _invalid(UNREADABLE, raw, str(error))
    if not isinstance(body, dict):
        return _invalid(UNREADABLE, raw, "body must be a JSON object")

    raw_type = body.get("type")
    id_field = spec.id_field_for(raw_type if isinstance(raw_type, str) else None)
    if len(raw) > max_bytes:
        return _invalid(
            _identity(body, id_field),
            raw,
            f"command is {len(raw)} bytes; the limit is {max_bytes}",
        )
    unstorable = tuple(
        Problem(ErrorCode.INVALID_REQUEST, found.rule, found.path)
        for found in (unstorable_text(body) if may_hold_unstorable else ())
    )
    try:
        contract: CommandMetadata = spec.adapter.validate_python(body)
    except ValidationError as error:
        identity = _identity(body, id_field)
        flagged = {problem.field for problem in unstorable}
        problems = _problems_of(error, identity.type, spec.personal_paths)
        # A field name that breaks a text rule is reported once, on its parent, never quoted.
        others = tuple(p for p in problems if p.field not in flagged and is_storable(p.field or ""))
        return InvalidCommand(identity, unstorable + others, body_hash(raw))
    if unstorable:
        return InvalidCommand(_identity(body, id_field), unstorable, body_hash(raw))

    document_id: str = getattr(contract, id_field)
    identity = _validated_identity(contract, document_id, body)
    if key_text(message.key) != document_id:
        return InvalidCommand(
            identity,
            (
                Problem(
                    ErrorCode.INVALID_REQUEST,
                    f"the Kafka key must equal {id_field} '{document_id}' so that commands for"
                    " one document stay in order",
                    id_field,
                ),
            ),
            body_hash(raw),
        )
    return ValidCommand(
        identity=identity,
        command_id=contract.command_id,
        tenant_id=contract.tenant_id,
        document_id=document_id,
        command=spec.to_domain(contract),
        request_hash=request_hash(contract.model_dump(mode="json", exclude={"issued_at"})),
        actor=RecordedActor(contract.actor.type, contract.actor.id) if contract.actor else None,
        dry_run=contract.dry_run,
    )


def key_text(key: bytes | None) -> str | None:
    """A Kafka key as text; None when there is none or it is not UTF-8."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def request_hash(canonical: dict[str, Any]) -> bytes:
    """Fingerprint of what a command asks for, independent of JSON formatting and key order."""
    return hashlib.sha256(canonical_json(canonical)).digest()


def canonical_json(value: dict[str, Any]) -> bytes:
    """JSON with sorted keys, compact, non-ASCII escaped. Inboxes keep the hash of it to tell a
    resent command from a reused id, so these bytes never change. orjson writes exactly them for
    printable ASCII content at a fraction of json's cost (contracts carry no floats, whose text
    would differ: tests/unit/test_request_hash.py); json writes the rest: non-ASCII, DEL (which
    json escapes and orjson does not), and integers past 64 bits."""
    try:
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        fast = None
    if fast is not None and fast.isascii() and b"\x7f" not in fast:
        return fast
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _identity(body: dict[str, Any], id_field: str) -> Identity:
    """The envelope fields that can be read and stored as they are; the rest are None."""
    command_id: UUID | None = None
    raw_id = body.get("command_id")
    if isinstance(raw_id, str):
        try:
            command_id = UUID(raw_id)
        except ValueError:
            command_id = None
    return Identity(
        command_id,
        _text(body.get("type")),
        _text(body.get("tenant_id")),
        _text(body.get(id_field)),
        *_named(body),
    )


def _validated_identity(contract: Any, document_id: str, body: dict[str, Any]) -> Identity:
    """What _identity reads of a body that validated, taken from its contract: identifiers are
    at most 64 storable characters there, so the values are the same, without parsing the
    command id again or checking text the contract has checked (3 of a create's 37 us)."""
    return Identity(
        contract.command_id, contract.type, contract.tenant_id, document_id, *_named(body)
    )


def _named(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The customer and the order the body names, if any."""
    payload = body.get("payload")
    subject = _text(body.get("customer_id")) or (
        _text(payload.get("customer_id")) if isinstance(payload, dict) else None
    )
    return subject, _text(body.get("order_id"))


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and is_storable(value[:200]) else None


def _problems_of(
    error: ValidationError, tag: str | None, personal_paths: tuple[str, ...]
) -> tuple[Problem, ...]:
    problems = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        location = list(detail["loc"])
        # A discriminated union puts the matched tag first; the caller knows fields, not tags.
        if location and location[0] == tag:
            location = location[1:]
        field = ".".join(str(part) for part in location) or None
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "type"
        message = detail["msg"]
        if field and field.startswith(personal_paths):
            # Validators such as email-validator quote parts of the input in their messages.
            message = f"not a valid value for this field ({detail['type']})"
            if detail["type"] == "extra_forbidden":
                # The unknown key is the sender's text, and may be personal data itself.
                field = ".".join(str(part) for part in location[:-1])
                message = "holds a field that is not allowed (its name is not repeated here)"
        problems.append(Problem(ErrorCode.INVALID_REQUEST, message, field))
    return tuple(problems)


def body_hash(raw: bytes | None) -> bytes:
    """What an invalid command is remembered by: the hash of its bytes as received (none for a
    tombstone), since it has no contract to hash. Made only for those (a valid one is hashed by
    its contract)."""
    return hashlib.sha256(raw or b"").digest()


def _invalid(identity: Identity, raw: bytes, message: str) -> InvalidCommand:
    problem = Problem(ErrorCode.INVALID_REQUEST, message, None)
    return InvalidCommand(identity, (problem,), body_hash(raw))
