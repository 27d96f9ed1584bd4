"""Malformed messages of every class a hostile or broken producer sends, for both families.

Each case knows what its answer must be: a rejection when its command_id can be read (plus a
dead letter), a dead letter alone when it cannot. The same seed gives the same cases, and the
same kinds are built for both families, so the two can be compared.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support import create, create_order

BAD_TEXT = ("\u0000", "\ud800", "\udfff", "\ufffe", "\U0010ffff", "\ufdd0")


@dataclass(frozen=True)
class Case:
    kind: str
    key: bytes | None
    value: bytes | None
    command_id: str | None
    """Readable command_id: the case must get a rejection naming it."""
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FamilyShape:
    id_field: str
    valid: Callable[[str], dict[str, Any]]
    text_fields: tuple[tuple[str | int, ...], ...]
    """Paths of string fields in a valid payload, to corrupt."""
    required: tuple[tuple[str | int, ...], ...]
    numbers: tuple[tuple[str | int, ...], ...] = field(default_factory=tuple)


PURCHASE_ORDERS = FamilyShape(
    "purchase_order_id",
    lambda document_id: create(document_id),
    (("payload", "supplier_id"), ("payload", "currency_code"), ("payload", "products", 0, "sku")),
    (("payload", "supplier_id"), ("payload", "warehouse_id"), ("payload", "products")),
    (("payload", "products", 0, "quantity"),),
)
ORDERS = FamilyShape(
    "order_id",
    lambda document_id: create_order(document_id),
    (
        ("payload", "customer_id"),
        ("payload", "shipping_address", "lines", 0),
        ("payload", "billing_address", "city"),
    ),
    (("payload", "customer_id"), ("payload", "items"), ("payload", "shipping_address")),
    (("payload", "items", 0, "quantity"),),
)
SHAPES = {"purchase-orders": PURCHASE_ORDERS, "orders": ORDERS}


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _delete(body: dict[str, Any], path: tuple[Any, ...]) -> None:
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]


def _encode(body: Any) -> bytes:
    # ensure_ascii escapes NUL, surrogates and noncharacters as \uXXXX, as most producers do.
    return json.dumps(body).encode()


def _nested(depth: int) -> bytes:
    return b'{"payload": ' * depth + b"1" + b"}" * depth


def malformed_cases(family: str, rng: random.Random, rounds: int = 1) -> list[Case]:
    """Every kind of malformed message, `rounds` times with fresh random choices."""
    shape = SHAPES[family]
    cases: list[Case] = []
    for round_ in range(rounds):
        document_id = f"BAD-{round_}-{rng.randrange(10**6)}"
        key = document_id.encode()

        def valid(document_id: str = document_id) -> dict[str, Any]:
            body = shape.valid(document_id)
            body["command_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            return body

        def answerable(kind: str, body: dict[str, Any], message_key: bytes | None = key) -> None:
            cases.append(Case(kind, message_key, _encode(body), body["command_id"]))

        def unanswerable(kind: str, value: bytes | None, message_key: bytes | None = key) -> None:
            cases.append(Case(kind, message_key, value, None))

        unanswerable("random bytes", rng.randbytes(rng.randrange(1, 300)))
        unanswerable("empty value", b"")
        unanswerable("null value (tombstone)", None)
        unanswerable("json null", b"null")
        unanswerable("json array", b"[1, 2, 3]")
        unanswerable("json string", b'"text"')
        whole = _encode(valid())
        unanswerable("truncated json", whole[: rng.randrange(1, len(whole) - 1)])
        unanswerable("utf-8 byte-order mark", b"\xef\xbb\xbf" + _encode(valid()))
        unanswerable("utf-16 body", json.dumps(valid()).encode("utf-16"))
        unanswerable("utf-16-le body, no bom", json.dumps(valid()).encode("utf-16-le"))
        unanswerable("latin-1 body", json.dumps(valid(), ensure_ascii=False).encode() + b"\xe9")
        unanswerable("nan", _encode(valid()).replace(b'"quantity": ', b'"quantity": NaN, "q": ', 1))
        unanswerable("deep nesting", _nested(rng.randrange(2_000, 30_000)))
        unanswerable("deep array", b"[" * rng.randrange(40, 5_000))
        unanswerable("key not utf-8, body unreadable", b"{", b"\xff\xfe\x00")

        bad_uuid = valid()
        bad_uuid["command_id"] = rng.choice(["not-a-uuid", "", "1234", "g" * 36])
        unanswerable("bad uuid", _encode(bad_uuid))
        no_id = valid()
        del no_id["command_id"]
        unanswerable("missing command_id", _encode(no_id))
        nul_id = valid()
        nul_id["command_id"] = nul_id["command_id"][:8] + "\u0000" + nul_id["command_id"][9:]
        unanswerable("nul in command_id", _encode(nul_id))

        for name, value in (("wrong type", 12), ("null", None), ("empty", ""), ("list", [])):
            body = valid()
            _set(body, rng.choice(shape.required), value)
            answerable(f"{name} in a required field", body)
        body = valid()
        _delete(body, rng.choice(shape.required))
        answerable("missing payload field", body)
        body = valid()
        del body[rng.choice(["tenant_id", "type", "payload", shape.id_field])]
        answerable("missing envelope field", body)
        body = valid()
        body[rng.choice(["priority", "extra", "x"])] = rng.choice([1, "y", None, {}])
        answerable("extra envelope field", body)
        body = valid()
        body["payload"]["unexpected"] = "z"
        answerable("extra payload field", body)
        body = valid()
        _set(body, rng.choice(shape.numbers), rng.choice([-1, 0, 10**30, 1.5, "3", True]))
        answerable("number out of range or of the wrong type", body)
        body = valid()
        body["type"] = rng.choice(["teleport", "purchase_order.", "order.create ", 7, None])
        answerable("unknown type", body)
        body = valid()
        body["expected_version"] = rng.choice([-1, "1", 1.0, True])
        answerable("bad expected_version", body)
        body = valid()
        body["payload"] = rng.choice([None, [], "x", 0])
        answerable("payload not an object", body)
        body = valid()
        answerable("key differs from the document id", body, b"OTHER-" + key)
        body = valid()
        answerable("no key", body, None)
        body = valid()
        answerable("nul in the key", body, key + b"\x00")
        body = valid()
        answerable("key not utf-8", body, b"\xff" + key)
        body = valid()
        body["padding"] = "p" * (300 * 1024)
        answerable("oversized", body)

        for bad in BAD_TEXT:
            code = f"U+{ord(bad):04X}"
            body = valid()
            body["tenant_id"] = "tenant" + bad
            answerable(f"{code} in tenant_id", body)
            body = valid()
            body[shape.id_field] = document_id + bad
            answerable(f"{code} in the document id", body)
            body = valid()
            _set(body, rng.choice(shape.text_fields), "text" + bad + "text")
            answerable(f"{code} in a payload string", body)
            body = valid()
            body["payload"]["name" + bad] = 1
            answerable(f"{code} in a field name", body)

        body = valid()
        cases.append(
            Case(
                "nul in a header name, payload unreadable",
                key,
                b"{oops",
                None,
                (("trace\x00id", b"\x00\xff"), ("x-\u00e9", b"")),
            )
        )
        body = valid()
        body["tenant_id"] = "t\u0000"
        cases.append(
            Case(
                "nul in a header name and in tenant_id",
                key,
                _encode(body),
                body["command_id"],
                (("h\x00", b"\x00"),),
            )
        )
    return cases
