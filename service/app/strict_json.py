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
- No object repeats a member name, at any depth: RFC 7493 (I-JSON), section 2.3. Parsers differ
  on which of two `tenant_id`s they keep, so a gateway and this service could each read another.

Problems name the place and the rule, never the offending value.

A body is read by jiter, which refuses all of the above that concerns JSON itself (repeated
names, NaN, lone surrogate escapes, bad UTF-8, a byte-order mark) in under half the time of the
standard library with a hook on every object (5.6 against 12.8 µs for a purchase-order create);
only what jiter refuses is read again by the standard library, whose result or error is then the
answer, worded as it always was. Strings are not cached (cache_mode "none"): jiter's cache would
keep personal data in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

import jiter

from service.domain.values import frozen

MAX_NESTING = 32
"""Deepest nesting of objects and arrays a command may have; real commands need about five."""

MAX_NAMED_LENGTH = 64
"""Longest member name a problem quotes; a longer one is left out, and only its place named."""

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


def read_json(
    raw: bytes, max_nesting: int = MAX_NESTING, *, with_jiter: bool = True
) -> tuple[Any, bool]:
    """The parsed JSON value of `raw` and whether any of its strings may break a text rule (if
    not, unstorable_text need not look); or UnreadableBody.

    `with_jiter=False` reads with the standard library alone, for bodies refused for their
    size whatever they hold: one a hostile sender makes jiter refuse at its last byte would
    otherwise be read twice, and jiter reads deeply nested arrays at a third of the speed."""
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
    if not with_jiter:
        return _read_or_name_the_problem(text), _may_hold_unstorable(text)
    try:
        value = jiter.from_json(
            raw, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="none"
        )
    except ValueError:
        value = _read_or_name_the_problem(text)
    return value, _may_hold_unstorable(text)


def _read_or_name_the_problem(text: str) -> Any:
    """A body read by the standard library (one jiter refused, or too large for it): it raises
    UnreadableBody with the problem in this module's words, or reads what jiter refuses and a
    later rule names better (a lone surrogate escape, which unstorable_text locates)."""
    try:
        return _DECODER.decode(text)
    except _RepeatedName:
        raise UnreadableBody(_repeated_name_problem(text)) from None
    except UnreadableBody:
        raise
    except ValueError as error:
        raise _not_json(error) from None


def _not_json(error: ValueError) -> UnreadableBody:
    """For a JSONDecodeError, or an integer too long to convert."""
    if isinstance(error, json.JSONDecodeError):
        return UnreadableBody(
            f"body is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        )
    return UnreadableBody("body is not JSON: number too long")


class _RepeatedName(Exception):
    """Some object of the body repeats a member name; _repeated_name_problem finds which."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Runs for every object of every message: one dict and one comparison, nothing more.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _RepeatedName
    return members


class _Repeating(dict[str, Any]):
    """An object that repeats a member name, as the second, locating parse builds it."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.repeated = ""
        for name, _ in pairs:
            if name in seen:
                self.repeated = name
                break
            seen.add(name)


def _mark_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    return members if len(members) == len(pairs) else _Repeating(pairs)


def _repeated_name_problem(text: str) -> str:
    """The problem with the first object (in the text's order) that repeats a member name: its
    path, and the name when it is safe to quote; never a value. Only refused bodies get here."""
    try:
        value = _LOCATING_DECODER.decode(text)
    except ValueError as error:  # the text also breaks off after the repeat
        return str(error if isinstance(error, UnreadableBody) else _not_json(error))
    path, repeating = _first_repeating(value, ()) or ((), None)
    name = repeating.repeated if repeating is not None else ""
    quoted = f" {json.dumps(name, ensure_ascii=False)}" if _nameable(name) else ""
    return (
        f"body is not I-JSON: an object repeats the member name{quoted} at"
        f" {'.'.join(path) or 'the top level'}; names must be unique (RFC 7493, section 2.3)"
    )


def _first_repeating(
    value: Any, path: tuple[str, ...]
) -> tuple[tuple[str, ...], _Repeating] | None:
    if isinstance(value, _Repeating):
        return path, value
    if isinstance(value, dict):
        steps = ((key if _nameable(key) else "?", item) for key, item in value.items())
    elif isinstance(value, list):
        steps = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for step, item in steps:
        if (found := _first_repeating(item, (*path, step))) is not None:
            return found
    return None


def _nameable(name: str) -> bool:
    """Whether a member name may appear in a problem: short, printable and storable."""
    return 0 < len(name) <= MAX_NAMED_LENGTH and name.isprintable() and is_storable(name)


def _may_hold_unstorable(text: str) -> bool:
    return not is_storable(text) or ("\\u" in text and bool(_UNSTORABLE_ESCAPE.search(text)))


def nesting_depth(text: str) -> int:
    """How deeply objects and arrays nest, counting brackets outside string literals."""
    structure = _STRING_LITERAL.sub("", text)
    steps = (1 if bracket in "[{" else -1 for bracket in _BRACKET.findall(structure))
    return max(accumulate(steps, initial=0))


@frozen
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


# Made once: json.loads would make a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_members)
_LOCATING_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, object_pairs_hook=_mark_repeats
)
