"""The edge reads bodies with jiter and falls back to the standard library only for what jiter
refuses. The two must never disagree on a body jiter accepts: same value, same types; and a
body the standard library refuses must be refused whoever reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.app.strict_json import UnreadableBody, _read_or_name_the_problem, read_json

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)

# Characters that make near-JSON: structure, escapes, number parts, and a few that are not JSON.
EDITS = st.sampled_from(
    [*'{}[]":,\\/ \t\n\r0123456789-+.eEtrufalsn', "\\u", "\\ud800", "\x00", "NaN", "'"]
)


def standard(text: str) -> tuple[str, Any]:
    """What the standard library path makes of a body: its value, or its problem."""
    try:
        return "value", _read_or_name_the_problem(text)
    except UnreadableBody as error:
        return "refused", str(error)


def exact(value: Any) -> str:
    # Equality alone would let 1 == 1.0 == True and 0.0 == -0.0 pass; the text and the types do not.
    return repr(value) + json.dumps(value)


@settings(max_examples=400)
@given(JSON_VALUES, st.booleans())
def test_any_json_value_reads_the_same_as_the_standard_library(value: Any, ascii: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii).encode()
    read, _ = read_json(raw)
    kind, expected = standard(raw.decode())
    assert kind == "value"
    assert exact(read) == exact(expected)


@settings(max_examples=1500)
@given(JSON_VALUES, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 2), EDITS), max_size=3))
def test_a_damaged_body_is_read_or_refused_as_the_standard_library_does(
    value: Any, edits: list[tuple[int, int, str]]
) -> None:
    text = json.dumps({"v": value})
    for position, action, piece in edits:
        at = position % (len(text) + 1)
        if action == 0:
            text = text[:at] + piece + text[at:]
        elif action == 1:
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    raw = text.encode("utf-8", "surrogatepass")
    kind, expected = standard(text) if _utf8(raw) else ("refused", None)
    if kind == "refused":
        with pytest.raises(UnreadableBody) as refused:
            read_json(raw)
        if expected is not None:
            assert str(refused.value) == expected
    else:
        read, _ = read_json(raw)
        assert exact(read) == exact(expected)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a":1,"a":2}', "repeats the member name"),
        (b'{"x":{"\\u0062":1,"b":2}}', 'member name "b" at x'),
        (b'{"a":NaN}', "NaN is not a JSON number"),
        (b'{"a":' + b"9" * 4301 + b"}", "number too long"),
        (b'{"a":1,}', "body is not JSON"),
    ],
)
def test_what_jiter_refuses_is_worded_by_the_standard_library_path(
    raw: bytes, problem: str
) -> None:
    with pytest.raises(UnreadableBody, match=problem):
        read_json(raw)


def test_a_lone_surrogate_escape_is_read_for_the_text_rules_to_name() -> None:
    # jiter refuses it; the standard library reads it, and unstorable_text names its place.
    value, may_hold_unstorable = read_json(b'{"name":"\\ud800"}')
    assert value == {"name": "\ud800"}
    assert may_hold_unstorable
