"""Contract checks for the teams on both ends: validate captured messages against the JSON
Schemas this package ships, so a consumer (or producer) can pin the contract in its own tests.

    from contract_tools.conformance import assert_conforms
    assert_conforms(record.value, topic=record.topic)

And the compatibility rules of a minor version, checked between two sets of schemas (the
released ones in contracts/released/, and the ones generated now):

- allowed: new message types, new optional fields, new enum values, looser limits in the
  descriptions;
- not allowed: removing a message type or a field, making a field required, changing a field's
  type or format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

MOVEMENT = "inventory.movement"
_NOT_A_CHANGE = ("description", "title", "examples", "default")


class ContractViolation(AssertionError):
    """A message that its schema refuses; `problems` lists each as `path: message`."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"{name} does not conform: " + "; ".join(problems))
        self.name = name
        self.problems = problems


@cache
def schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema of one message, by name (`order.created`, `order.rejection`)."""
    text = resources.files("contracts").joinpath("schemas", f"{name}.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_names() -> list[str]:
    folder = resources.files("contracts").joinpath("schemas")
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def name_of(body: Mapping[str, Any], topic: str | None = None) -> str:
    """Which schema a message answers to: its `type`, or what its topic carries."""
    topic = topic or ""
    family = "order" if ".orders." in f".{topic}" else "purchase_order"
    if topic.endswith("rejections"):
        return f"{family}.rejection"
    if topic.endswith("previews"):
        return f"{family}.preview"
    if topic.endswith("inventory.movements") or "movement_id" in body:
        return MOVEMENT
    message_type = body.get("type")
    if not isinstance(message_type, str):
        raise ContractViolation("message", ["type: missing, and the topic does not say"])
    return message_type


def problems(
    message: bytes | Mapping[str, Any], name: str | None = None, *, topic: str | None = None
) -> list[str]:
    """Every way the message breaks its schema (empty when it conforms)."""
    body = json.loads(message) if isinstance(message, bytes | str) else dict(message)
    name = name or name_of(body, topic)
    if name not in schema_names():
        return [f"type: no message of the contract is called {name!r}"]
    validator = Draft202012Validator(schema(name))
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(message)'}: {error.message}"
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ]


def assert_conforms(
    message: bytes | Mapping[str, Any], name: str | None = None, *, topic: str | None = None
) -> None:
    found = problems(message, name, topic=topic)
    if found:
        body = json.loads(message) if isinstance(message, bytes | str) else message
        raise ContractViolation(name or name_of(body, topic), found)


def breaking_changes(
    released: Mapping[str, dict[str, Any]], current: Mapping[str, dict[str, Any]]
) -> list[str]:
    """What a minor version may not do, found between two sets of schemas by message name."""
    found = []
    for name, old in sorted(released.items()):
        new = current.get(name)
        if new is None:
            found.append(f"{name}: the message type was removed")
            continue
        found += [f"{name}: {change}" for change in _changes(old, new, old, new, "")]
    return found


def _changes(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    path: str,
) -> Iterator[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    for field in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        yield f"{path}{field}: became required"
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    for field, old_field in old_properties.items():
        if field not in new_properties:
            yield f"{path}{field}: was removed"
            continue
        yield from _changes(old_field, new_properties[field], old_root, new_root, f"{path}{field}.")
    where = path.rstrip(".") or "(message)"
    for keyword in ("type", "format", "const"):
        if keyword in old and old.get(keyword) != new.get(keyword):
            yield f"{where}: {keyword} changed from {old[keyword]!r} to {new.get(keyword)!r}"
    if "enum" in old and not set(old["enum"]) <= set(new.get("enum", old["enum"])):
        yield f"{where}: enum values were removed"
    for keyword in ("anyOf", "oneOf", "allOf"):
        if keyword in old:
            old_options = [_resolve(option, old_root) for option in old[keyword]]
            new_options = [_resolve(option, new_root) for option in new.get(keyword, ())]
            for option in old_options:
                if not any(
                    not list(_changes(option, candidate, old_root, new_root, path))
                    for candidate in new_options
                ):
                    yield f"{where}: the accepted shapes narrowed ({keyword})"
                    break
    if "items" in old and isinstance(old["items"], dict):
        yield from _changes(old["items"], new.get("items", {}), old_root, new_root, f"{path}[].")


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A node with its local `$ref` (#/$defs/...) followed, and wording left out."""
    while "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: v for k, v in node.items() if k not in _NOT_A_CHANGE}
