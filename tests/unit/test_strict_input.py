"""What the stores cannot hold is refused at the edge, the same way by both families."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from service.app.incoming import IncomingMessage
from service.app.orders.family import order_family
from service.app.parse import CommandSpec, InvalidCommand, ValidCommand, parse_command
from service.app.purchase_orders.family import purchase_order_family
from service.app.strict_json import MAX_NESTING, UnreadableBody, nesting_depth, read_json
from tests.support import create, create_order

LIMIT = 256 * 1024
FAMILIES: dict[str, tuple[CommandSpec[Any], Any, str]] = {
    "purchase_orders": (purchase_order_family().commands, create, "PO-1"),
    "orders": (order_family().commands, create_order, "O-1"),
}


def parse(family: str, body: dict[str, Any] | bytes, key: bytes | None = None) -> Any:
    spec, _, document_id = FAMILIES[family]
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = IncomingMessage("cmds", 0, 1, 1, key or document_id.encode(), value)
    return parse_command(message, LIMIT, spec)


def valid_body(family: str) -> dict[str, Any]:
    _, build, document_id = FAMILIES[family]
    body: dict[str, Any] = build(document_id)
    return body


def invalid(family: str, body: dict[str, Any] | bytes, key: bytes | None = None) -> InvalidCommand:
    parsed = parse(family, body, key)
    assert isinstance(parsed, InvalidCommand), parsed
    return parsed


BAD_TEXT = {
    "nul": ("a\u0000b", "U+0000"),
    "lone surrogate": ("a\ud800b", "lone surrogate"),
    "noncharacter": ("a\ufffeb", "noncharacter"),
    "plane-16 noncharacter": ("a\U0010ffffb", "noncharacter"),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("text", BAD_TEXT)
@pytest.mark.parametrize("where", ["tenant_id", "document id", "payload field", "field name"])
def test_text_no_store_can_hold_is_refused_on_its_field(family: str, text: str, where: str) -> None:
    value, rule = BAD_TEXT[text]
    body = valid_body(family)
    id_field = "purchase_order_id" if family == "purchase_orders" else "order_id"
    if where == "tenant_id":
        body["tenant_id"], field = value, "tenant_id"
    elif where == "document id":
        body[id_field], field = value, id_field
    elif where == "payload field":
        if family == "purchase_orders":
            body["payload"]["note_to_supplier"], field = value, "payload.note_to_supplier"
        else:
            body["payload"]["shipping_address"]["lines"][0] = value
            field = "payload.shipping_address.lines.0"
    else:
        body["payload"][value] = 1
        field = "payload"
    # json.dumps escapes these characters, as a producer in any language would.
    parsed = invalid(family, body)
    problem = next(p for p in parsed.problems if p.field == field)
    assert rule in problem.message
    assert value not in problem.message
    assert parsed.identity.command_id == uuid.UUID(body["command_id"]), "still answerable"
    assert all(
        value not in (part or "")
        for part in vars(parsed.identity).values()
        if isinstance(part, str)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_nul_gets_the_same_answer_in_both_families(family: str) -> None:
    """An order's address line is encrypted to bytes, a purchase order's note is jsonb: the rule
    is about what may be stored anywhere, so both refuse it alike."""
    body = valid_body(family)
    body["tenant_id"] = "t\u0000"
    [problem] = [p for p in invalid(family, body).problems if p.field == "tenant_id"]
    assert problem.code.value == "invalid_request"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        ('{"a": 1}'.encode("utf-16-le"), "not JSON"),
        ('{"a": 1}'.encode("utf-32"), "not UTF-8"),
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "not a JSON number"),
        (b'{"a": ' + b"9" * 5000 + b"}", "number too long"),
        (b"[" * 2000 + b"]" * 2000, "the limit is 32"),
        (b'{"payload": ' * 30_000 + b"1" + b"}" * 30_000, "the limit is 32"),
        (b"[" * 100_000, "the limit is 32"),
    ],
)
def test_bodies_that_are_not_strict_utf8_json_are_unreadable(
    family: str, raw: bytes, reason: str
) -> None:
    parsed = invalid(family, raw)
    assert parsed.identity.command_id is None
    [problem] = parsed.problems
    assert reason in problem.message


def test_nesting_is_measured_outside_string_literals() -> None:
    assert nesting_depth('{"a": "[[[[{{{{", "b": [1, {"c": "\\"]]]"}]}') == 3
    assert nesting_depth("") == 0
    assert read_json(b"[" * MAX_NESTING + b"]" * MAX_NESTING)[0] is not None
    with pytest.raises(UnreadableBody):
        read_json(b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_key_that_is_not_utf8_is_refused_without_echo(family: str) -> None:
    parsed = invalid(family, valid_body(family), key=b"\xff\x00PO")
    [problem] = parsed.problems
    assert "Kafka key" in problem.message
    assert "\\x" not in problem.message


@pytest.mark.parametrize("family", FAMILIES)
def test_ordinary_unicode_is_accepted(family: str) -> None:
    body = valid_body(family)
    if family == "purchase_orders":
        body["payload"]["note_to_supplier"] = "Grüße, 注文 🚚 \t tab"
    else:
        body["payload"]["shipping_address"]["name"] = "Zoë Ñúñez 🚚"
    assert isinstance(parse(family, body), ValidCommand)


I_JSON = "names must be unique (RFC 7493, section 2.3)"


def repeated(problem: str) -> str:
    """What a refusal for a repeated member name says before the rule: the name and place."""
    prefix = "body is not I-JSON: an object repeats the member name"
    assert problem.startswith(prefix), problem
    assert problem.endswith(I_JSON), problem
    return problem.removeprefix(prefix).removesuffix(f"; {I_JSON}")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_repeated_tenant_id_is_refused_without_reading_either(family: str) -> None:
    """A gateway that keeps the first tenant_id and a service that keeps the last would each
    authorise another tenant: the body is refused whole, naming neither value."""
    text = json.dumps(valid_body(family))
    raw = (text[:-1] + ', "tenant_id": "tenant-b"}').encode()
    parsed = invalid(family, raw)
    assert parsed.identity.command_id is None
    assert parsed.identity.tenant_id is None
    [problem] = parsed.problems
    assert repeated(problem.message) == ' "tenant_id" at the top level'
    assert "tenant-a" not in problem.message
    assert "tenant-b" not in problem.message


@pytest.mark.parametrize("family", FAMILIES)
def test_a_name_repeated_inside_the_payload_is_refused_at_its_object(family: str) -> None:
    body = valid_body(family)
    if family == "purchase_orders":
        body["payload"]["products"][0]["note"] = "PLACEHOLDER"
        repeat, where = '"cost": 0.01', "payload.products.0"
    else:
        body["payload"]["shipping_address"]["note"] = "PLACEHOLDER"
        repeat, where = '"city": "Paris"', "payload.shipping_address"
    raw = json.dumps(body).replace('"note": "PLACEHOLDER"', repeat).encode()
    [problem] = invalid(family, raw).problems
    assert repeated(problem.message).endswith(f" at {where}")
    assert "Paris" not in problem.message
    assert "0.01" not in problem.message


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"a":1,"a":1}', ' "a" at the top level'),
        (b'{"a": {"b": [1, {"c": 1, "d": 2, "c": 1}]}}', ' "c" at a.b.1'),
        (b'[{"x": 1}, {"y": 1, "y": 2}]', ' "y" at 1'),
        # Equal values, or one of them null, change nothing: the repeat is the fault.
        (b'{"payload": {"note": null, "note": null}}', ' "note" at payload'),
    ],
)
def test_any_repeat_is_refused_at_any_depth(raw: bytes, named: str) -> None:
    with pytest.raises(UnreadableBody) as refused:
        read_json(raw)
    assert repeated(str(refused.value)) == named


def test_a_name_that_cannot_be_quoted_leaves_only_its_place() -> None:
    long_name = "n" * 65
    cases = {
        f'{{"payload": {{"{long_name}": 1, "{long_name}": 2}}}}': " at payload",
        '{"payload": {"\\u0000": 1, "\\u0000": 2}}': " at payload",
        '{"payload": {"a\\nb": 1, "a\\nb": 2}}': " at payload",
        # A parent whose name cannot be quoted is a place holder in the path.
        '{"payload": {"\\ud800": {"k": 1, "k": 2}}}': ' "k" at payload.?',
    }
    for text, named in cases.items():
        with pytest.raises(UnreadableBody) as refused:
            read_json(text.encode())
        problem = str(refused.value)
        assert repeated(problem) == named, text
        assert long_name not in problem
        assert "\x00" not in problem
        assert "\n" not in problem


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_name_in_different_objects_is_fine(family: str) -> None:
    body = valid_body(family)
    body["payload"]["tenant_id"] = body["tenant_id"]  # unknown to the contract, but not a repeat
    value, _ = read_json(json.dumps(body).encode())
    assert value == body
    assert read_json(b'{"id": 1, "a": {"id": 1}, "b": [{"id": 1}, {"id": 1}]}')[0] == {
        "id": 1,
        "a": {"id": 1},
        "b": [{"id": 1}, {"id": 1}],
    }
    # Both addresses of an order have a name, a city...; every product has a sku.
    assert isinstance(parse(family, valid_body(family)), ValidCommand)


def test_a_body_that_breaks_off_after_a_repeat_is_refused_as_not_json() -> None:
    with pytest.raises(UnreadableBody, match="body is not JSON"):
        read_json(b'{"a": 1, "a": 2, "b": ')
