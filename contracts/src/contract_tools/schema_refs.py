"""Following `$ref`s in a JSON Schema: the kit checks messages against schemas with their
definitions inlined, and the compatibility check compares schemas node by node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

Schema: TypeAlias = dict[str, Any]

ANNOTATIONS = frozenset(
    {
        "$comment",
        "$defs",
        "$id",
        "$schema",
        "default",
        "definitions",
        "deprecated",
        "description",
        "discriminator",
        "examples",
        "readOnly",
        "title",
        "writeOnly",
    }
)
"""Keywords that change no message's validity (pydantic's `discriminator` is OpenAPI's)."""


def resolve(node: Mapping[str, Any], root: Schema) -> Schema:
    """A node with its local `$ref`s followed and allOf merged, annotations left out."""
    resolved = dict(node)
    seen: set[str] = set()
    while isinstance(resolved.get("$ref"), str) and resolved["$ref"].startswith("#/"):
        ref = resolved.pop("$ref")
        if ref in seen:
            break
        seen.add(ref)
        resolved = {**pointer(root, ref), **resolved}
    for member in resolved.pop("allOf", ()):
        part = resolve(member, root)
        required = [*resolved.get("required", ()), *part.get("required", ())]
        properties = {**part.get("properties", {}), **resolved.get("properties", {})}
        resolved = {**part, **resolved}
        if required:
            resolved["required"] = sorted(set(required))
        if properties:
            resolved["properties"] = properties
    return {k: v for k, v in resolved.items() if k not in ANNOTATIONS and not k.startswith("x-")}


def pointer(root: Schema, ref: str) -> Schema:
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return dict(target)


def inline(node: Mapping[str, Any], root: Schema, open_refs: tuple[str, ...]) -> Schema:
    """The node with every local `$ref` replaced by what it names (a recursive one by `{}`),
    annotations left out: two messages' fields can then be compared as plain data."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if ref in open_refs:
            return {}
        target = {**pointer(root, ref), **{k: v for k, v in node.items() if k != "$ref"}}
        return inline(target, root, (*open_refs, ref))
    inlined: Schema = {}
    for keyword, value in node.items():
        if keyword in ANNOTATIONS or keyword.startswith("x-"):
            continue
        if keyword in _SCHEMA_MAPS and isinstance(value, Mapping):
            value = {key: inline(child, root, open_refs) for key, child in value.items()}
        elif keyword in _SCHEMA_LISTS and isinstance(value, list):
            value = [inline(child, root, open_refs) for child in value]
        elif keyword in _SCHEMA_VALUES and isinstance(value, Mapping):
            value = inline(value, root, open_refs)
        inlined[keyword] = value
    return inlined


_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "contains"})
