"""The contract kit: check captured messages against a contract's JSON Schemas (two versions of
a contract are compared by contract_tools.compatibility).

    from contract_tools.conformance import Contract, assert_conforms

    assert_conforms(record.value, topic=record.topic)          # the shipped schemas
    Contract.from_directory("contracts/released").check(body)  # another version's

A message is checked the way its readers read it (`contracts.readers.POLICIES`, also written
into every schema as `x-readers`):

- tolerant (events, rejections, previews, movements, replies, state): unknown fields, unknown
  enum or const values and unknown message types are listed in the verdict's `unknowns`, not
  as problems; for an unknown message type the envelope its kind shares (ids, tenant, version)
  is still checked. Anything else (a required field missing, a wrong type or format) is a
  problem.
- strict (commands, and what a producer checks about its own messages, `mode=Reading.STRICT`):
  everything the schema says, `additionalProperties: false` and closed enums included.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeAlias

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from contract_tools.schema_refs import Schema, inline
from contracts.readers import (
    MOVEMENT_MESSAGE,
    POLICIES,
    REPLY_MESSAGE,
    Compatibility,
    MessageKind,
    Policy,
    Reading,
    kind_of,
)

Message: TypeAlias = bytes | bytearray | str | Mapping[str, Any] | None
"""A record's value: JSON text, or an object already decoded; None is a tombstone."""

MOVEMENT = MOVEMENT_MESSAGE
REPLY = REPLY_MESSAGE
STRICT = Reading.STRICT
TOLERANT = Reading.TOLERANT

CAUTIOUS = Policy(Compatibility.FULL, Reading.STRICT)
"""The policy of a message whose kind the contract does not say: both directions, strictly."""

_BODY_FIELDS = frozenset({"type", "data", "payload"})
"""What differs between messages of one kind; the rest of their fields is their envelope."""


class ContractViolation(AssertionError):
    """A message that its schema refuses; `problems` lists each as `path: message`."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        super().__init__(f"{name} does not conform: " + "; ".join(problems))
        self.name = name
        self.problems = list(problems)


@dataclass(frozen=True)
class Unknown:
    """Something a tolerant reader meets that its version of the contract does not know."""

    path: str
    what: Literal["field", "value", "message type"]
    value: object

    def __str__(self) -> str:
        if self.what == "field":
            return f"{self.path}: unknown field"
        return f"{self.path}: unknown {self.what} {self.value!r}"


@dataclass(frozen=True)
class Verdict:
    """How one message fared: it conforms when nothing in `problems` is left."""

    name: str
    mode: Reading
    problems: tuple[str, ...]
    unknowns: tuple[Unknown, ...] = ()

    @property
    def conforms(self) -> bool:
        return not self.problems


# --- Formats ------------------------------------------------------------------------------------

FORMATS = FormatChecker()
"""jsonschema's format checks (uuid, email, ...) plus date-time, which it checks only when an
optional package is installed: a format the schemas promise is checked, always."""


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # RFC 3339: a date, a time and an offset; fromisoformat raises on anything malformed.
    if not isinstance(value, str):
        return True
    return "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None


# --- A contract -------------------------------------------------------------------------------


class Contract:
    """One version of the contract: a JSON Schema per message name, and how each is read."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self._schemas: dict[str, Schema] = {
            name: copy.deepcopy(dict(body)) for name, body in schemas.items()
        }
        self._validators: dict[str, Draft202012Validator] = {}
        self._envelopes: dict[tuple[MessageKind | None, str], Draft202012Validator] = {}

    @classmethod
    def shipped(cls) -> Contract:
        """The schemas installed with this package (the contract it was built with)."""
        return _shipped()

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Contract:
        """The `<name>.json` files of a folder, e.g. contracts/released."""
        folder = Path(path)
        schemas = {file.stem: json.loads(file.read_text()) for file in folder.glob("*.json")}
        if not schemas:
            raise ValueError(f"no schemas (*.json) in {folder}")
        return cls(schemas)

    @property
    def names(self) -> list[str]:
        return sorted(self._schemas)

    def __contains__(self, name: object) -> bool:
        return name in self._schemas

    def schema(self, name: str) -> Schema:
        """A copy of one message's schema, by name (`order.created`, `order.rejection`)."""
        return copy.deepcopy(self._schemas[name])

    def kind(self, name: str) -> MessageKind | None:
        known = kind_of(name)
        if known is not None:
            return known
        properties = self._schemas.get(name, {}).get("properties", {})
        if "event_id" in properties:
            return MessageKind.EVENT
        return MessageKind.COMMAND if "payload" in properties else None

    def policy(self, name: str) -> Policy:
        """How the message is read and may change: as its schema says, else by its kind."""
        schema = self._schemas.get(name, {})
        kind = self.kind(name)
        default = CAUTIOUS if kind is None else POLICIES[kind]
        try:
            return Policy(
                Compatibility(schema.get("x-compatibility", default.compatibility)),
                Reading(schema.get("x-readers", default.readers)),
            )
        except ValueError:
            return default

    def check(
        self,
        message: Message,
        name: str | None = None,
        *,
        topic: str | None = None,
        mode: Reading | None = None,
    ) -> Verdict:
        """Check one message as its readers read it (`mode` says otherwise)."""
        if message is None:
            return self._check_tombstone(name or _routed({}, topic or "") or "message", mode)
        try:
            body = _decode(message)
        except ValueError as error:
            return Verdict(name or "message", mode or STRICT, (f"(message): {error}",))
        name = name or name_of(body, topic)
        if name not in self._schemas:
            return self._check_unknown(body, name, mode)
        mode = mode or self.policy(name).readers
        return _verdict(name, mode, self._validator(name).iter_errors(body))

    def problems(
        self,
        message: Message,
        name: str | None = None,
        *,
        topic: str | None = None,
        mode: Reading | None = None,
    ) -> list[str]:
        return list(self.check(message, name, topic=topic, mode=mode).problems)

    def assert_conforms(
        self,
        message: Message,
        name: str | None = None,
        *,
        topic: str | None = None,
        mode: Reading | None = None,
    ) -> Verdict:
        verdict = self.check(message, name, topic=topic, mode=mode)
        if not verdict.conforms:
            raise ContractViolation(verdict.name, verdict.problems)
        return verdict

    def _validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            self._validators[name] = Draft202012Validator(
                self._schemas[name], format_checker=FORMATS
            )
        return self._validators[name]

    def _check_tombstone(self, name: str, mode: Reading | None) -> Verdict:
        # Compacted topics (.state) take a null value as "forget this key"; no other topic does.
        mode = mode or self.policy(name).readers
        if self.kind(name) is MessageKind.STATE:
            return Verdict(name, mode, ())
        problem = "(message): null (a tombstone), which only the compacted .state topics carry"
        return Verdict(name, mode, (problem,))

    def _check_unknown(self, body: Mapping[str, Any], name: str, mode: Reading | None) -> Verdict:
        kind = kind_of(name) or _kind_of_body(body)
        mode = mode or (STRICT if kind is None else POLICIES[kind].readers)
        if mode is STRICT:
            return Verdict(name, mode, (f"type: no message of the contract is called {name!r}",))
        envelope = self._envelope(kind, name.partition(".")[0])
        found = Unknown("(message)", "message type", name)
        return _verdict(name, mode, envelope.iter_errors(body), (found,))

    def _envelope(self, kind: MessageKind | None, family: str) -> Draft202012Validator:
        """What every message of the kind carries beside its type and body, and the family's
        document id (`<family>_id`) where the family's messages agree on it."""
        if (kind, family) not in self._envelopes:
            peers = [n for n in self._schemas if kind is not None and self.kind(n) is kind]
            kin = [n for n in peers if n.partition(".")[0] == family]
            properties, required = _shared([self._inlined(n) for n in peers], exclude=_BODY_FIELDS)
            own, own_required = _shared(
                [self._inlined(n) for n in kin], only=frozenset({f"{family}_id"})
            )
            envelope = {
                "type": "object",
                "properties": properties | own,
                "required": sorted(required | own_required),
            }
            self._envelopes[kind, family] = Draft202012Validator(envelope, format_checker=FORMATS)
        return self._envelopes[kind, family]

    def _inlined(self, name: str) -> Schema:
        root = self._schemas[name]
        inlined: Schema = inline(root, root, ())
        return inlined


@cache
def _shipped() -> Contract:
    folder = resources.files("contracts").joinpath("schemas")
    return Contract(
        {
            entry.name.removesuffix(".json"): json.loads(entry.read_text())
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        }
    )


# --- The module-level kit, over the shipped schemas -------------------------------------------


def schema(name: str) -> Schema:
    """The shipped JSON Schema of one message, by name (`order.created`, `order.rejection`)."""
    return Contract.shipped().schema(name)


def schema_names() -> list[str]:
    return Contract.shipped().names


def name_of(body: Mapping[str, Any], topic: str | None = None) -> str:
    """Which schema a message answers to: what its topic carries, or its `type`."""
    routed = _routed(body, topic or "")
    if routed is not None:
        return routed
    message_type = body.get("type")
    if not isinstance(message_type, str):
        raise ContractViolation("message", ["type: missing, and the topic does not say"])
    return message_type


def _routed(body: Mapping[str, Any], topic: str) -> str | None:
    """The message a topic (or, without one, a message's shape) names, if it names one."""
    family = "order" if ".orders." in f".{topic}" else "purchase_order"
    # Reply topics are named by the sender (replies.<tenant>...), so any suffix can follow.
    if topic.startswith("replies.") or {"outcome", "replied_at"} <= body.keys():
        return REPLY
    if topic.endswith("rejections"):
        return f"{family}.rejection"
    if topic.endswith("previews"):
        return f"{family}.preview"
    if topic.endswith(".state"):
        return f"{family}.state"
    if topic.endswith("inventory.movements") or "movement_id" in body:
        return MOVEMENT
    return None


def check(
    message: Message,
    name: str | None = None,
    *,
    topic: str | None = None,
    mode: Reading | None = None,
) -> Verdict:
    return Contract.shipped().check(message, name, topic=topic, mode=mode)


def problems(
    message: Message,
    name: str | None = None,
    *,
    topic: str | None = None,
    mode: Reading | None = None,
) -> list[str]:
    """Every way the message breaks its schema (empty when it conforms)."""
    return Contract.shipped().problems(message, name, topic=topic, mode=mode)


def assert_conforms(
    message: Message,
    name: str | None = None,
    *,
    topic: str | None = None,
    mode: Reading | None = None,
) -> Verdict:
    return Contract.shipped().assert_conforms(message, name, topic=topic, mode=mode)


# --- Checking one message -----------------------------------------------------------------------


def _decode(message: Message) -> Mapping[str, Any]:
    body = json.loads(message) if isinstance(message, bytes | bytearray | str) else message
    if not isinstance(body, Mapping):
        raise ValueError("a JSON object is required")
    return body


def _kind_of_body(body: Mapping[str, Any]) -> MessageKind | None:
    if "event_id" in body:
        return MessageKind.EVENT
    return MessageKind.COMMAND if "payload" in body else None


def _verdict(
    name: str,
    mode: Reading,
    errors: Iterable[ValidationError],
    unknowns: tuple[Unknown, ...] = (),
) -> Verdict:
    ordered = sorted(errors, key=lambda e: [str(part) for part in e.absolute_path])
    if mode is STRICT:
        return Verdict(name, mode, tuple(_describe(error) for error in ordered), unknowns)
    found, problems = _tolerate(ordered)
    return Verdict(name, mode, tuple(problems), (*unknowns, *found))


def _tolerate(errors: Iterable[ValidationError]) -> tuple[list[Unknown], list[str]]:
    """Split a strict validator's errors into what a tolerant reader lets pass and the rest."""
    unknowns: list[Unknown] = []
    problems: list[str] = []
    for error in errors:
        if error.validator == "additionalProperties" and error.validator_value is False:
            unknowns += _unknown_fields(error)
        elif error.validator in ("enum", "const"):
            unknowns.append(Unknown(_path(error), "value", error.instance))
        elif error.validator in ("anyOf", "oneOf") and error.context:
            tolerated = _tolerated_option(error.context)
            if tolerated is None:
                problems.append(_describe(error))
            else:
                unknowns += tolerated
        else:
            problems.append(_describe(error))
    return unknowns, problems


def _tolerated_option(context: Iterable[ValidationError]) -> list[Unknown] | None:
    """The unknowns of the first option of an anyOf/oneOf that only unknowns kept from
    matching, or None when every option has a real problem."""
    by_option: dict[int, list[ValidationError]] = {}
    for error in context:
        by_option.setdefault(int(error.relative_schema_path[0]), []).append(error)
    for option in sorted(by_option):
        unknowns, problems = _tolerate(by_option[option])
        if not problems:
            return unknowns
    return None


def _unknown_fields(error: ValidationError) -> list[Unknown]:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    return [
        Unknown(_join(_path(error), key), "field", value)
        for key, value in instance.items()
        if key not in known and not any(re.search(pattern, key) for pattern in patterns)
    ]


def _path(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _describe(error: ValidationError) -> str:
    return f"{_path(error) or '(message)'}: {error.message}"


def _shared(
    schemas: Sequence[Schema],
    *,
    exclude: frozenset[str] = frozenset(),
    only: frozenset[str] | None = None,
) -> tuple[dict[str, Any], set[str]]:
    """The properties every schema declares alike, and which of them every schema requires."""
    if not schemas:
        return {}, set()
    first, *rest = schemas
    properties = {
        field: spec
        for field, spec in first.get("properties", {}).items()
        if field not in exclude
        and (only is None or field in only)
        and all(other.get("properties", {}).get(field) == spec for other in rest)
    }
    required = {f for f in properties if all(f in s.get("required", ()) for s in schemas)}
    return properties, required
