"""Reading untrusted JSON strictly, so that nothing a store or a consumer cannot hold gets past
the edge.

- UTF-8 only, with no byte-order mark: RFC 8259, section 8.1 ("JSON text exchanged between
  systems ... MUST be encoded using UTF-8" and "MUST NOT add a byte order mark"). The standard
  library would otherwise guess UTF-16 and UTF-32 and accept them.
- Nesting at most MAX_NESTING levels, measured on the text before it is parsed, so a deeply
  nested body is refused without recursing into it.
- No NaN or Infinity (not JSON at all, though Python's parser takes them).
- Every string, object keys included, free of U+0000 (Postgres text and jsonb refuse it), of
  lone surrogates (not Unicode scalar values, so not encodable as UTF-8 again), and of Unicode
  noncharacters (U+FDD0..U+FDEF and the last two code points of every plane: reserved for a
  program's internal use, and refused so that they never reach a consumer's store).

Problems name the place and the rule, never the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

MAX_NESTING = 32
"""Deepest nesting of objects and arrays a command may have; real commands need about five."""

_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
_UNSTORABLE = re.compile(f"[\x00\ud800-\udfff{_NONCHARACTERS}]")


# The same characters as JSON escapes (a supplementary noncharacter is a surrogate pair, so
# the surrogate range covers it). A text with neither cannot hold one: no walk is needed.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F]|[fF][dD][dDeE]|[fF]{3}[eEfF])")


class UnreadableBody(ValueError):
    """The body is not a JSON text this service reads; the message says why, not what."""


def read_json(raw: bytes, max_nesting: int = MAX_NESTING) -> tuple[Any, bool]:
    """The parsed JSON value of `raw` and whether any of its strings may break a text rule (if
    not, unstorable_text need not look); or UnreadableBody."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableBody(
            f"body is not UTF-8 (invalid byte at position {error.start}); JSON between systems"
            " must be UTF-8 (RFC 8259, section 8.1)"
        ) from None
    if text.startswith("\ufeff"):
        raise UnreadableBody("body starts with a byte-order mark; send UTF-8 JSON without one")
    # Nesting cannot be deeper than the number of opening brackets: most bodies need no scan.
    opening = text.count("[") + text.count("{")
    if opening > max_nesting and (depth := nesting_depth(text)) > max_nesting:
        raise UnreadableBody(f"body nests {depth} levels deep; the limit is {max_nesting}")
    try:
        return json.loads(text, parse_constant=_refuse_constant), _may_hold_unstorable(text)
    except UnreadableBody:
        raise
    except ValueError as error:  # JSONDecodeError, and integers too long to convert
        detail = error.msg if isinstance(error, json.JSONDecodeError) else "number too long"
        where = (
            f" at line {error.lineno} column {error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise UnreadableBody(f"body is not JSON: {detail}{where}") from None


def _may_hold_unstorable(text: str) -> bool:
    return not is_storable(text) or ("\\u" in text and bool(_UNSTORABLE_ESCAPE.search(text)))


def nesting_depth(text: str) -> int:
    """How deeply objects and arrays nest, counting brackets outside string literals."""
    structure = _STRING_LITERAL.sub("", text)
    steps = (1 if bracket in "[{" else -1 for bracket in _BRACKET.findall(structure))
    return max(accumulate(steps, initial=0))


@dataclass(frozen=True)
class UnstorableText:
    """A string that no store can hold as it is: where it is, and which rule it breaks."""

    path: str | None
    rule: str


def unstorable_text(value: Any, path: str | None = None) -> Iterator[UnstorableText]:
    """Every string in a parsed JSON value (keys included) that breaks a rule of this module."""
    if isinstance(value, str):
        if (rule := text_rule_broken(value)) is not None:
            yield UnstorableText(path, rule)
    elif isinstance(value, dict):
        for key, item in value.items():
            if (rule := text_rule_broken(key)) is not None:
                yield UnstorableText(path, f"a field name {rule}")
                continue
            yield from unstorable_text(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_text(item, f"{path}.{index}" if path else str(index))


def text_rule_broken(text: str) -> str | None:
    """Why `text` cannot be stored as it is, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    code_point = ord(found.group())
    if code_point == 0:
        return "contains U+0000 (NUL), which text stores refuse"
    if 0xD800 <= code_point <= 0xDFFF:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not a Unicode character"
    return "contains a Unicode noncharacter, reserved for a program's internal use"


def is_storable(text: str) -> bool:
    # The character class search is slow on long texts; an ASCII text can only hold NUL.
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def _refuse_constant(name: str) -> Any:
    raise UnreadableBody(f"body is not JSON: {name} is not a JSON number")
