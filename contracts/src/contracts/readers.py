"""Tolerant readers: read what another version of the contract wrote, strict writers unchanged.

The models in this package are the writers' models: they refuse unknown fields and values, and
the service publishes with them, so nothing it writes strays from the schemas. A consumer built
against one version must still read what the next minor version publishes (new optional fields,
new enum values, new event types; see contract_tools.compatibility.breaking_changes), so it reads
through these functions instead of validating with the models directly:

    from contracts.readers import UnknownEvent, read_event

    event = read_event(record.value)
    if isinstance(event, UnknownEvent):
        log.info("skipping %s", event.type)   # newer than this reader; ids and raw data kept

- unknown fields are ignored;
- an unknown event type reads as an `UnknownEvent` (its type, the envelope fields that could be
  read, the raw object); a known message carrying an enum or literal value this version does not
  know reads as an `UnknownEvent` (events) or `Unrecognised` (anything else) listing each value
  with its path, never as an exception;
- anything else (invalid JSON, a required field missing, a wrong type) raises
  `UnreadableMessage` naming every field at fault: no version of the contract writes that.

`read(model_or_adapter, raw)` applies the same rules to any model or TypeAdapter.

This module also holds the table of how each kind of message is read and so how it may change
between versions (`POLICIES`): the contract kit checks compatibility by it and the schema
generator writes it into every schema (`x-compatibility`, `x-readers`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar, get_args, overload
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from contracts import orders, previews
from contracts import purchase_orders as po
from contracts.inventory import InventoryMovement
from contracts.replies import COMMAND_REPLY, CommandReply

# --- How each kind of message is read, and so how it may change --------------------------------


class MessageKind(StrEnum):
    COMMAND = "command"
    EVENT = "event"
    REJECTION = "rejection"
    PREVIEW = "preview"
    MOVEMENT = "movement"
    REPLY = "reply"
    STATE = "state"


class Compatibility(StrEnum):
    """Which versions of a message must be readable by which versions of its readers."""

    BACKWARD = "backward"
    """A new reader accepts every message the previous schema accepted: the service, upgraded,
    still reads the commands of producers that were not."""
    FORWARD = "forward"
    """A previous (tolerant) reader accepts every message the new schema allows: consumers that
    were not upgraded still read what the upgraded service publishes."""
    FULL = "full"
    """Both."""


class Reading(StrEnum):
    """How readers of a kind of message treat what they do not know."""

    STRICT = "strict"
    """Unknown fields, values and types are errors: the service reads commands so."""
    TOLERANT = "tolerant"
    """Unknown fields are ignored, unknown values and types are reported, not refused."""


@dataclass(frozen=True)
class Policy:
    compatibility: Compatibility
    readers: Reading


POLICIES: Final[Mapping[MessageKind, Policy]] = MappingProxyType(
    {
        MessageKind.COMMAND: Policy(Compatibility.BACKWARD, Reading.STRICT),
        MessageKind.EVENT: Policy(Compatibility.FORWARD, Reading.TOLERANT),
        MessageKind.REJECTION: Policy(Compatibility.FORWARD, Reading.TOLERANT),
        MessageKind.PREVIEW: Policy(Compatibility.FORWARD, Reading.TOLERANT),
        MessageKind.MOVEMENT: Policy(Compatibility.FORWARD, Reading.TOLERANT),
        MessageKind.REPLY: Policy(Compatibility.FORWARD, Reading.TOLERANT),
        MessageKind.STATE: Policy(Compatibility.FORWARD, Reading.TOLERANT),
    }
)
"""The one table of the contract's evolution rules, by kind of message."""

REPLY_MESSAGE: Final = "command.reply"
MOVEMENT_MESSAGE: Final = "inventory.movement"
_KIND_BY_SUFFIX: Final = {
    ".rejection": MessageKind.REJECTION,
    ".preview": MessageKind.PREVIEW,
    ".state": MessageKind.STATE,
}


def _type_names(union: Any) -> frozenset[str]:
    members: tuple[type[BaseModel], ...] = get_args(union)
    return frozenset(get_args(m.model_fields["type"].annotation)[0] for m in members)


COMMAND_TYPES: Final = _type_names(po.PurchaseOrderCommandMessage) | _type_names(
    orders.OrderCommandMessage
)
EVENT_TYPES: Final = _type_names(po.PurchaseOrderEventMessage) | _type_names(
    orders.OrderEventMessage
)


def kind_of(name: str) -> MessageKind | None:
    """The kind of the message a schema is named after (`order.created`, `order.rejection`), or
    None for a name this version of the contract does not know."""
    if name == REPLY_MESSAGE:
        return MessageKind.REPLY
    if name == MOVEMENT_MESSAGE:
        return MessageKind.MOVEMENT
    for suffix, kind in _KIND_BY_SUFFIX.items():
        if name.endswith(suffix):
            return kind
    if name in COMMAND_TYPES:
        return MessageKind.COMMAND
    if name in EVENT_TYPES:
        return MessageKind.EVENT
    return None


def policy_of(name: str) -> Policy | None:
    kind = kind_of(name)
    return None if kind is None else POLICIES[kind]


# --- What a tolerant reader returns -----------------------------------------------------------

Raw: TypeAlias = bytes | bytearray | str | Mapping[str, Any]
"""A message as it arrived (JSON text) or already decoded into an object."""

Family: TypeAlias = Literal["purchase_order", "order"]
"""A document family, as its messages' names start (`purchase_order.rejection`)."""

Event: TypeAlias = po.PurchaseOrderEventMessage | orders.OrderEventMessage


class UnreadableMessage(ValueError):
    """A message no version of the contract writes: `problems` names each field at fault."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        super().__init__(f"unreadable {what}: " + "; ".join(problems))
        self.what = what
        self.problems = tuple(problems)


@dataclass(frozen=True)
class UnknownValue:
    """A value this version of the contract does not know, at a dotted path (`data.to_status`)."""

    path: str
    value: object

    def __str__(self) -> str:
        return f"{self.path}: {self.value!r}"


@dataclass(frozen=True, kw_only=True)
class Unrecognised:
    """A message of a known kind carrying values this version does not know: not read into its
    model, since the model cannot hold them, but handed over whole."""

    type: str | None
    unknown_values: tuple[UnknownValue, ...]
    raw: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class UnknownEvent:
    """An event this version cannot read into a model: a new type, or a known type carrying an
    unknown value (`unknown_values` says which). The envelope fields are those that could be
    read, None where absent or malformed."""

    type: str
    event_id: UUID | None
    tenant_id: str | None
    version: int | None
    command_id: UUID | None
    document_id: str | None
    unknown_values: tuple[UnknownValue, ...]
    raw: Mapping[str, Any]

    @property
    def known_type(self) -> bool:
        """True when only values inside the event are new, not its type."""
        return all(unknown.path != "type" for unknown in self.unknown_values)


# --- Readers ----------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

AnyEvent = Annotated[Event, Field(discriminator="type")]
EVENT: Final[TypeAdapter[Event]] = TypeAdapter(AnyEvent)
"""Every event of every family in one discriminated union: an event is parsed once, whatever
its family."""
_REJECTIONS: Final[Mapping[str, type[BaseModel]]] = {
    "purchase_order": po.PurchaseOrderRejection,
    "order": orders.OrderRejection,
}
_PREVIEWS: Final[Mapping[str, type[BaseModel]]] = {
    "purchase_order": previews.PurchaseOrderPreview,
    "order": previews.OrderPreview,
}


@overload
def read(target: type[M], raw: Raw) -> M | Unrecognised: ...
@overload
def read(target: TypeAdapter[T], raw: Raw) -> T | Unrecognised: ...
def read(target: type[BaseModel] | TypeAdapter[Any], raw: Raw) -> Any:
    """Read a message into a model (or a TypeAdapter's type) as a tolerant reader does."""
    what = target.__name__ if isinstance(target, type) else "message"
    return _read(target, raw, what)


def read_event(raw: Raw) -> Event | UnknownEvent:
    """Any event of any family, or an UnknownEvent for what this version does not know."""
    try:
        event: Event = _validate(EVENT, raw)
    except ValidationError as error:
        body = _decode(raw, "event")
        event_type = body.get("type")
        if not isinstance(event_type, str):
            problem = "type: a string naming the event is required"
            raise UnreadableMessage("event", [problem]) from error
        found = _unrecognised(body, error, "event")
        return _unknown_event(body, event_type, found.unknown_values)
    return event


def read_reply(raw: Raw) -> CommandReply | Unrecognised:
    reply: CommandReply | Unrecognised = _read(COMMAND_REPLY, raw, "reply")
    return reply


def read_movement(raw: Raw) -> InventoryMovement | Unrecognised:
    return read(InventoryMovement, raw)


@overload
def read_rejection(
    raw: Raw, family: Literal["purchase_order"]
) -> po.PurchaseOrderRejection | Unrecognised: ...
@overload
def read_rejection(raw: Raw, family: Literal["order"]) -> orders.OrderRejection | Unrecognised: ...
def read_rejection(raw: Raw, family: Family) -> BaseModel | Unrecognised:
    """A rejection from the family's rejections topic."""
    rejection: BaseModel | Unrecognised = _read(
        _of_family(_REJECTIONS, family), raw, f"{family}.rejection"
    )
    return rejection


@overload
def read_preview(
    raw: Raw, family: Literal["purchase_order"]
) -> previews.PurchaseOrderPreview | Unrecognised: ...
@overload
def read_preview(raw: Raw, family: Literal["order"]) -> previews.OrderPreview | Unrecognised: ...
def read_preview(raw: Raw, family: Family) -> BaseModel | Unrecognised:
    """A preview from the family's previews topic."""
    preview: BaseModel | Unrecognised = _read(
        _of_family(_PREVIEWS, family), raw, f"{family}.preview"
    )
    return preview


def _of_family(models: Mapping[str, type[BaseModel]], family: str) -> type[BaseModel]:
    try:
        return models[family]
    except KeyError:
        raise ValueError(f"no family {family!r}; one of {sorted(models)}") from None


# --- How -------------------------------------------------------------------------------------

_UNKNOWN_VALUE_ERRORS: Final = frozenset(
    {"enum", "literal_error", "union_tag_invalid", "ISO4217", "country_alpha2"}
)
"""Pydantic's error types for a value outside a closed set. The last two are
pydantic-extra-types' currency and country codes: closed enums in the schemas too, and lists
that grow (ISO adds codes)."""


def _read(target: type[BaseModel] | TypeAdapter[Any], raw: Raw, what: str) -> Any:
    try:
        return _validate(target, raw)
    except ValidationError as error:
        return _unrecognised(_decode(raw, what), error, what)


def _validate(target: type[BaseModel] | TypeAdapter[Any], raw: Raw) -> Any:
    # Per-call extra="ignore" (pydantic >= 2.12) keeps the writers' models strict everywhere else.
    if isinstance(raw, Mapping):
        body = dict(raw)
        if isinstance(target, TypeAdapter):
            return target.validate_python(body, extra="ignore")
        return target.model_validate(body, extra="ignore")
    # JSON text is validated as JSON, so numbers reach Decimal fields exactly as written.
    if isinstance(target, TypeAdapter):
        return target.validate_json(raw, extra="ignore")
    return target.model_validate_json(raw, extra="ignore")


def _decode(raw: Raw, what: str) -> dict[str, Any]:
    """The message as a JSON object: needed only once validation failed, to say why."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise UnreadableMessage(what, [f"(message): not JSON: {error}"]) from None
    if not isinstance(body, dict):
        raise UnreadableMessage(what, ["(message): a JSON object is required"])
    return body


def _unrecognised(body: dict[str, Any], error: ValidationError, what: str) -> Unrecognised:
    unknown: list[UnknownValue] = []
    problems: list[str] = []
    for detail in error.errors(include_url=False):
        path = _data_path(body, detail)
        if detail["type"] in _UNKNOWN_VALUE_ERRORS:
            unknown.append(_unknown_value(path, detail))
        else:
            problems.append(f"{path or '(message)'}: {detail['msg']}")
    if problems:
        raise UnreadableMessage(what, problems) from error
    message_type = body.get("type")
    return Unrecognised(
        type=message_type if isinstance(message_type, str) else None,
        unknown_values=tuple(unknown),
        raw=body,
    )


def _unknown_value(path: str, detail: ErrorDetails) -> UnknownValue:
    if detail["type"] != "union_tag_invalid":
        return UnknownValue(path, detail["input"])
    # The error sits on the union; the unknown value is its discriminator's.
    context = detail.get("ctx", {})
    field = str(context.get("discriminator", "")).strip("'")
    return UnknownValue(".".join(p for p in (path, field) if p), context.get("tag"))


def _data_path(body: object, detail: ErrorDetails) -> str:
    """The error's location as a path into the message, without the union tags pydantic puts in
    `loc` (`purchase_order.status_changed`, `function-after[...]`): a step that is not in the
    data is such a tag, unless it names the missing field itself."""
    location = detail["loc"]
    node: object = body
    parts: list[str] = []
    for index, step in enumerate(location):
        found, child = _child(node, step)
        if found:
            node = child
        elif not (index == len(location) - 1 and detail["type"] == "missing"):
            continue
        parts.append(str(step))
    return ".".join(parts)


def _child(node: object, step: str | int) -> tuple[bool, object]:
    if isinstance(node, Mapping) and step in node:
        return True, node[step]
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return True, node[step]
    return False, None


def _unknown_event(
    body: Mapping[str, Any], event_type: str, unknown: tuple[UnknownValue, ...]
) -> UnknownEvent:
    # Every family names its document `<family>_id` (purchase_order_id, order_id, customer_id).
    document_field = f"{event_type.partition('.')[0]}_id"
    return UnknownEvent(
        type=event_type,
        event_id=_uuid(body.get("event_id")),
        tenant_id=_text(body.get("tenant_id")),
        version=_integer(body.get("version")),
        command_id=_uuid(body.get("command_id")),
        document_id=_text(body.get(document_field)),
        unknown_values=unknown,
        raw=body,
    )


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
