"""The request hash inboxes keep never changes: the fast path writes the bytes json always
wrote, for any JSON a command's canonical form can hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contracts.orders import ORDER_COMMAND
from contracts.purchase_orders import PURCHASE_ORDER_COMMAND
from service.app.parse import canonical_json

# What model_dump(mode="json") of a command holds: no floats (see the last test). ASCII text
# drawn apart, so that every ASCII character (DEL too) comes up often.
texts = st.text() | st.text(st.characters(max_codepoint=0x7F))
scalars = st.none() | st.booleans() | st.integers() | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def as_json_always_wrote(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@given(st.dictionaries(texts, values, max_size=6))
def test_canonical_json_is_what_json_wrote(value: dict[str, Any]) -> None:
    assert canonical_json(value) == as_json_always_wrote(value)


def test_integers_past_64_bits_and_escapes_are_written_as_json_wrote_them() -> None:
    value = {"b": 2**70, "a": "é\u2028\x1f\ud83d", "c": [-(2**64), "\U0001f600"]}
    assert canonical_json(value) == as_json_always_wrote(value)


def test_every_ascii_character_is_written_as_json_wrote_it() -> None:
    # DEL is ASCII that json escapes and orjson does not: the one the fast path must not take.
    for code in range(128):
        value = {chr(code): chr(code), "text": f"a{chr(code)}b"}
        assert canonical_json(value) == as_json_always_wrote(value), hex(code)


def _numbers(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = ["number"] if schema.get("type") == "number" else []
        return found + [n for item in schema.values() for n in _numbers(item)]
    if isinstance(schema, list):
        return [n for item in schema for n in _numbers(item)]
    return []


def test_no_command_carries_a_float() -> None:
    for adapter in (PURCHASE_ORDER_COMMAND, ORDER_COMMAND):
        assert _numbers(adapter.json_schema(mode="serialization")) == []
