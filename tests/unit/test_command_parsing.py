"""Every validation rule at the edge: bad input becomes problems naming the field, never a crash."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.app.incoming import IncomingMessage
from service.app.orders.family import order_family
from service.app.parse import CommandSpec, InvalidCommand, ValidCommand, _identity, parse_command
from service.app.purchase_orders.family import purchase_order_family
from service.app.received import Received
from service.domain import purchase_orders as po
from tests.support import (
    address,
    change_status,
    command,
    create,
    create_order,
    details,
    redact_customer,
)
from tests.unit.test_wire_json import order_commands, purchase_order_commands

LIMIT = 64 * 1024
COMMANDS = purchase_order_family().commands


def parse(body: dict[str, Any] | bytes, key: str | None = "PO-1") -> Any:
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = IncomingMessage("cmds", 0, 7, 1, key.encode() if key else None, value)
    return parse_command(message, LIMIT, COMMANDS)


def problem_fields(body: dict[str, Any] | bytes, key: str | None = "PO-1") -> list[str | None]:
    parsed = parse(body, key)
    assert isinstance(parsed, InvalidCommand), parsed
    return [p.field for p in parsed.problems]


def named_fields(body: dict[str, Any] | bytes, key: str | None = "PO-1") -> list[str]:
    """`problem_fields` where every problem names its field."""
    fields = problem_fields(body, key)
    named = [field for field in fields if field is not None]
    assert named == fields, fields
    return named


def with_payload(**overrides: Any) -> dict[str, Any]:
    return command("purchase_order.create", "PO-1", details(**overrides))


def test_a_valid_create_becomes_a_domain_command() -> None:
    parsed = parse(create("PO-1"))
    assert isinstance(parsed, ValidCommand)
    assert isinstance(parsed.command, po.CreatePurchaseOrder)
    assert parsed.command.details.products[0] == po.ProductLine(
        "WIDGET-001", 100, None, parsed.command.details.products[0].cost
    )
    assert str(parsed.command.details.products[0].cost) == "9.99"


def test_a_valid_change_status_becomes_a_domain_command() -> None:
    parsed = parse(change_status("PO-1", "open", expected_version=1))
    assert isinstance(parsed, ValidCommand)
    assert parsed.command == po.ChangePurchaseOrderStatus(po.Status.OPEN, None, 1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"supplier_id": ""}, "payload.supplier_id"),
        ({"warehouse_id": None}, "payload.warehouse_id"),
        ({"products": []}, "payload.products"),
        ({"products": [{"sku": "A", "quantity": 0}]}, "payload.products.0.quantity"),
        ({"products": [{"sku": "A", "quantity": 1.5}]}, "payload.products.0.quantity"),
        ({"products": [{"sku": "A", "quantity": "3"}]}, "payload.products.0.quantity"),
        ({"products": [{"sku": "A", "quantity": True}]}, "payload.products.0.quantity"),
        ({"products": [{"quantity": 1}]}, "payload.products.0.sku"),
        ({"products": [{"sku": "A", "quantity": 1, "cost": -0.01}]}, "payload.products.0.cost"),
        ({"products": [{"sku": "A", "quantity": 1, "cost": "abc"}]}, "payload.products.0.cost"),
        ({"products": [{"sku": "A B", "quantity": 1}]}, "payload.products.0.sku"),
        ({"products": [{"sku": "A", "quantity": 1, "colour": "red"}]}, "payload.products.0.colour"),
        ({"payment_terms": "net_90"}, "payload.payment_terms"),
        ({"payment_status": "maybe"}, "payload.payment_status"),
        ({"currency_code": "US"}, "payload.currency_code"),
        ({"currency_code": "XYZ"}, "payload.currency_code"),
        ({"order_date": "yesterday"}, "payload.order_date"),
        ({"order_date": "2025-01-15T00:00:00"}, "payload.order_date"),
        ({"expected_delivery_date": 12}, "payload.expected_delivery_date"),
        ({"tracking_number": "x" * 201}, "payload.tracking_number"),
        ({"note_to_supplier": "x" * 2001}, "payload.note_to_supplier"),
        ({"discount": 5}, "payload.discount"),
    ],
)
def test_each_payload_rule_names_its_field(overrides: dict[str, Any], field: str) -> None:
    assert problem_fields(with_payload(**overrides)) == [field]


def test_currency_codes_are_normalised_to_upper_case() -> None:
    parsed = parse(with_payload(currency_code="eur"))
    assert isinstance(parsed, ValidCommand)
    assert isinstance(parsed.command, po.CreatePurchaseOrder)
    assert parsed.command.details.currency_code == "EUR"


def test_too_many_product_lines() -> None:
    lines = [{"sku": f"S{i}", "quantity": 1} for i in range(501)]
    assert problem_fields(with_payload(products=lines)) == ["payload.products"]


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"command_id": "not-a-uuid"}, "command_id"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": None}, "tenant_id"),
        ({"expected_version": -1}, "expected_version"),
        ({"expected_version": "1"}, "expected_version"),
        ({"actor": {"type": "robot", "id": "r2"}}, "actor.type"),
        ({"issued_at": "2025-01-01T00:00:00"}, "issued_at"),
        ({"priority": "high"}, "priority"),
        ({"type": "purchase_order.teleport"}, "type"),
    ],
)
def test_each_envelope_rule_names_its_field(envelope: dict[str, Any], field: str) -> None:
    assert problem_fields({**create("PO-1"), **envelope}) == [field]


def test_missing_envelope_fields_are_all_listed() -> None:
    body = create("PO-1")
    for name in ("tenant_id", "payload", "purchase_order_id"):
        del body[name]
    assert sorted(named_fields(body, key=None)) == ["payload", "purchase_order_id", "tenant_id"]


def test_every_problem_is_reported_at_once() -> None:
    body = with_payload(supplier_id="", currency_code="ZZZ", products=[{"sku": "A", "quantity": 0}])
    assert sorted(named_fields(body)) == [
        "payload.currency_code",
        "payload.products.0.quantity",
        "payload.supplier_id",
    ]


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"null", b"[]", b'"text"', b"12"])
def test_unreadable_bodies_are_invalid_without_an_identity(raw: bytes) -> None:
    parsed = parse(raw)
    assert isinstance(parsed, InvalidCommand)
    assert parsed.identity.command_id is None
    assert parsed.problems[0].field is None


def test_an_oversized_command_is_invalid_but_still_answerable() -> None:
    body = with_payload(note_to_supplier="x" * 1000)
    body["padding_never_read"] = "y" * LIMIT
    parsed = parse(body)
    assert isinstance(parsed, InvalidCommand)
    assert parsed.identity.command_id == uuid.UUID(body["command_id"])
    assert "the limit is 65536" in parsed.problems[0].message


def test_the_kafka_key_must_be_the_document_id() -> None:
    assert problem_fields(create("PO-1"), key="PO-2") == ["purchase_order_id"]
    assert problem_fields(create("PO-1"), key=None) == ["purchase_order_id"]


def test_rejections_never_echo_submitted_values() -> None:
    secret = "canary-4c1d"
    parsed = parse(with_payload(currency_code=secret, payment_terms=secret, supplier_id=secret * 9))
    assert isinstance(parsed, InvalidCommand)
    assert all(secret not in p.message for p in parsed.problems)


def test_the_request_hash_ignores_formatting_and_issued_at() -> None:
    body = create("PO-1")
    compact = parse(json.dumps(body, separators=(",", ":")).encode())
    spaced = parse(json.dumps({**body, "issued_at": "2025-01-01T00:00:00Z"}, indent=4).encode())
    changed = parse({**body, "payload": details(supplier_id="OTHER")})
    assert compact.request_hash == spaced.request_hash != changed.request_hash


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b"{", "PO-1"),  # unreadable
        (b"[]", "PO-1"),  # not an object
        (json.dumps({**create("PO-1"), "padding": "y" * LIMIT}).encode(), "PO-1"),  # too large
        (json.dumps(with_payload(currency_code="??")).encode(), "PO-1"),  # breaks a rule
        (json.dumps(with_payload(note_to_supplier="a\u0000b")).encode(), "PO-1"),  # unstorable
        (json.dumps(create("PO-1")).encode(), "PO-2"),  # valid, under another key
    ],
)
def test_an_invalid_command_is_remembered_by_the_hash_of_its_bytes(raw: bytes, key: str) -> None:
    """It has no contract to hash: a re-send of the same bytes is a duplicate, and any other
    bytes under its command_id are another request."""
    parsed = parse(raw, key)
    assert isinstance(parsed, InvalidCommand)
    assert parsed.request_hash == hashlib.sha256(raw).digest()
    assert parse(raw + b" ", key).request_hash == hashlib.sha256(raw + b" ").digest()


@pytest.mark.parametrize("value", [None, b""])
def test_a_tombstone_or_an_empty_body_is_remembered_by_the_hash_of_no_bytes(
    value: bytes | None,
) -> None:
    """A null value (a tombstone on the commands topic) is read as no bytes, by the parser and
    by a message whose parsing failed outright (a defect): the same key, never a crash."""
    message = IncomingMessage("cmds", 0, 7, 1, b"PO-1", value)
    parsed = parse_command(message, LIMIT, COMMANDS)
    assert isinstance(parsed, InvalidCommand)
    assert parsed.request_hash == hashlib.sha256(b"").digest()
    never_parsed: Received[Any] = Received(message, None, defect=RuntimeError("parsing raised"))
    assert never_parsed.request_hash == hashlib.sha256(b"").digest()
    assert Received(message, parsed).request_hash == parsed.request_hash


def test_errors_on_personal_fields_never_quote_the_value() -> None:
    body = create_order(
        "O-1", details={"shipping_address": address(email="ada.secret@@example..org", country="XX")}
    )
    message = IncomingMessage("cmds", 0, 1, 1, b"O-1", json.dumps(body).encode())
    parsed = parse_command(message, LIMIT, order_family().commands)
    assert isinstance(parsed, InvalidCommand)
    assert sorted(p.field or "" for p in parsed.problems) == [
        "payload.shipping_address.country",
        "payload.shipping_address.email",
    ]
    for problem in parsed.problems:
        assert "secret" not in problem.message
        assert "XX" not in problem.message
        assert problem.message.startswith("not a valid value for this field")


def test_customer_redact_is_keyed_by_the_customer() -> None:
    body = {
        "command_id": str(uuid.uuid4()),
        "type": "customer.redact",
        "tenant_id": "t",
        "customer_id": "CUST-1",
        "payload": {"orders_to_redact": ["O-1"]},
    }
    spec = order_family().commands
    good = parse_command(
        IncomingMessage("c", 0, 1, 1, b"CUST-1", json.dumps(body).encode()), LIMIT, spec
    )
    assert isinstance(good, ValidCommand)
    assert good.document_id == "CUST-1"
    wrong = parse_command(
        IncomingMessage("c", 0, 2, 1, b"O-1", json.dumps(body).encode()), LIMIT, spec
    )
    assert isinstance(wrong, InvalidCommand)
    assert [p.field for p in wrong.problems] == ["customer_id"]


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        purchase_order_commands().map(lambda bodies: ("po", bodies)),
        order_commands().map(lambda bodies: ("order", bodies)),
    ),
    st.sampled_from(["C-1", "cust.9:x/y", "a" * 64]),
)
def test_a_valid_commands_identity_is_what_its_body_names(
    drawn: tuple[str, list[dict[str, Any]]], customer_id: str
) -> None:
    # Taken from the contract once the body validates, as read from the body before: the same.
    family, bodies = drawn
    spec: CommandSpec[Any] = COMMANDS if family == "po" else order_family().commands
    for body in [*bodies, redact_customer(customer_id)] if family == "order" else bodies:
        key = body.get("purchase_order_id") or body.get("order_id") or body["customer_id"]
        message = IncomingMessage("cmds", 0, 7, 1, key.encode(), json.dumps(body).encode())
        parsed = parse_command(message, LIMIT, spec)
        assert isinstance(parsed, ValidCommand), parsed
        assert parsed.identity == _identity(body, spec.id_field_for(body["type"]))
