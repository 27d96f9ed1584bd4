"""Proof of origin: a dead letter or a replay grant verifies only as the service wrote it, for
the exact topic, key, value and headers it was made for, under the same key."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from contracts.headers import (
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_SIGNATURE,
    REPLAY_AUTHORITY,
    REPLAY_SIGNATURE,
    REPLAYED_FROM,
)
from service.app.incoming import IncomingMessage
from service.app.messages import dead_letter_message, sealed_dead_letter_message
from service.app.ports import Claims, OutboxMessage
from service.app.provenance import (
    ReplayGrant,
    Signer,
    authority_from_json,
    authority_json,
    letter_is_authentic,
    read_replay,
    replay_headers,
    signed_letter,
)
from service.app.purchase_orders.family import purchase_order_family

KEY = bytes(range(32))
SIGNER = Signer(KEY, "k1")
CUSTOMER = Claims(
    "CUST-1", "https://id.example", "customer", "tenant-a", frozenset({"b", "a"}), "cmd-1"
)
COMMANDS = "orders.commands"


def letter(*headers: tuple[str, bytes]) -> OutboxMessage:
    return OutboxMessage(
        "orders.commands.dlq",
        b"O-1",
        b'{"type": "order.delete"}',
        headers
        or (
            ("traceparent", b"00-ab-cd-01"),
            ("x-dead-letter-reason", b"invalid"),
            (DEAD_LETTER_AUTHORITY, authority_json(CUSTOMER)),
        ),
    )


def authentic(message: OutboxMessage, signer: Signer = SIGNER) -> bool:
    return letter_is_authentic(signer, message.topic, message.key, message.value, message.headers)


def test_a_signature_verifies_for_exactly_what_was_signed() -> None:
    value = SIGNER.sign("purpose", [b"a", b"b"])
    assert value.startswith(b"k1:")
    assert SIGNER.verify("purpose", [b"a", b"b"], value)
    assert not SIGNER.verify("other", [b"a", b"b"], value)
    assert not SIGNER.verify("purpose", [b"ab"], value), "parts are length-prefixed"
    assert not SIGNER.verify("purpose", [b"a", b"", b"b"], value)
    assert not SIGNER.verify("purpose", [b"b", b"a"], value)
    assert not Signer(KEY, "k2").verify("purpose", [b"a", b"b"], b"k2" + value[2:])
    assert not Signer(bytes(32), "k1").verify("purpose", [b"a", b"b"], value)


@pytest.mark.parametrize(
    "value",
    [b"", b"k1", b"k1:", b":" + b"0" * 64, b"k1:zz", b"k1:" + b"0" * 64, "k1:é".encode()],
)
def test_anything_malformed_fails_to_verify(value: bytes) -> None:
    assert not SIGNER.verify("purpose", [b"a"], value)


def test_a_signed_letter_is_authentic_as_written() -> None:
    signed = signed_letter(SIGNER, letter())
    assert signed.headers[:-1] == letter().headers
    assert signed.headers[-1][0] == DEAD_LETTER_SIGNATURE
    assert authentic(signed)
    assert not authentic(letter()), "no signature, not authentic"


SIGNED = signed_letter(SIGNER, letter())
H = SIGNED.headers  # traceparent, reason, authority, signature


def headers(*replaced: tuple[str, bytes]) -> OutboxMessage:
    return replace(SIGNED, headers=replaced)


@pytest.mark.parametrize(
    "altered",
    [
        replace(SIGNED, topic="purchase-orders.commands.dlq"),
        replace(SIGNED, key=b"O-2"),
        replace(SIGNED, key=b""),
        replace(SIGNED, value=b'{"type": "order.create"}'),
        headers(("traceparent", b"00-ff-cd-01"), *H[1:]),
        headers(("tracestate", H[0][1]), *H[1:]),
        headers(("x", b"y"), *H),
        headers(*H[:-1], ("x", b"y"), H[-1]),
        headers(*H, ("x", b"y")),
        headers(*H[1:]),
        headers(H[1], H[0], *H[2:]),
        headers(*H[:2], (DEAD_LETTER_AUTHORITY, authority_json(None)), H[-1]),
        headers(*H, H[-1]),  # two signatures
    ],
    ids=[
        "topic",
        "key",
        "no key",
        "value",
        "header value",
        "header name",
        "header added first",
        "header added before the signature",
        "header added after the signature",
        "header removed",
        "headers reordered",
        "authority lowered",
        "signature repeated",
    ],
)
def test_a_letter_altered_in_any_way_is_not_authentic(altered: OutboxMessage) -> None:
    assert authentic(SIGNED)
    assert not authentic(altered)


def test_a_letter_is_not_authentic_under_another_key_or_key_id() -> None:
    signed = signed_letter(SIGNER, letter())
    assert not authentic(signed, Signer(bytes(32), "k1"))
    assert not authentic(signed, Signer(KEY, "k2"))
    name, value = signed.headers[-1]
    relabelled = OutboxMessage(
        signed.topic,
        signed.key,
        signed.value,
        (*signed.headers[:-1], (name, b"k2" + value.removeprefix(b"k1"))),
    )
    assert not authentic(relabelled)
    assert not authentic(relabelled, Signer(KEY, "k2")), "the key id is signed too"


def test_an_absent_key_signs_as_the_empty_key_the_service_writes() -> None:
    signed = signed_letter(SIGNER, OutboxMessage("t.dlq", b"", b"v"))
    assert letter_is_authentic(SIGNER, "t.dlq", None, b"v", signed.headers)


@pytest.mark.parametrize("claims", [CUSTOMER, None, Claims("ops", "iss", None, None, frozenset())])
def test_authority_round_trips_as_canonical_json(claims: Claims | None) -> None:
    raw = authority_json(claims)
    assert authority_from_json(raw) == claims
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_authority_json_lists_scopes_sorted_and_null_for_no_token() -> None:
    assert authority_json(None) == b"null"
    assert json.loads(authority_json(CUSTOMER)) == {
        "subject": "CUST-1",
        "issuer": "https://id.example",
        "role": "customer",
        "tenant": "tenant-a",
        "scopes": ["a", "b"],
        "token_id": "cmd-1",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}",
        b"[]",
        b'{"subject":"a","subject":"b","issuer":"i","role":null,"tenant":null,"scopes":[],'
        b'"token_id":null}',
        b'{"subject":1,"issuer":"i","role":null,"tenant":null,"scopes":[],"token_id":null}',
        b'{"subject":"a","issuer":"i","role":null,"tenant":null,"scopes":"admin","token_id":null}',
        b'{"subject":"a","issuer":"i","role":null,"tenant":null,"scopes":[],"token_id":null,'
        b'"admin":true}',
        b"\xff",
    ],
)
def test_authority_other_than_what_the_service_writes_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError: JSON, Unicode, shape
        authority_from_json(raw)


def incoming(
    headers: list[tuple[str, bytes]],
    *,
    topic: str = COMMANDS,
    key: bytes | None = b"O-1",
    value: bytes = b'{"type": "order.delete"}',
) -> IncomingMessage:
    return IncomingMessage(topic, 0, 5, 0, key, value, tuple(headers))


def grant_headers(claims: Claims | None = CUSTOMER) -> list[tuple[str, bytes]]:
    return replay_headers(
        SIGNER,
        COMMANDS,
        b"O-1",
        b'{"type": "order.delete"}',
        "orders.commands.dlq/0/7",
        claims,
        "alice",
    )


@pytest.mark.parametrize("claims", [CUSTOMER, None])
def test_a_replay_grant_reads_back_as_made(claims: Claims | None) -> None:
    headers = grant_headers(claims)
    assert [name for name, _ in headers] == [REPLAYED_FROM, REPLAY_AUTHORITY, REPLAY_SIGNATURE]
    assert dict(headers)[REPLAYED_FROM] == b"orders.commands.dlq/0/7"
    traced = [("traceparent", b"00-ab-cd-01"), *headers]
    assert read_replay(SIGNER, incoming(traced)) == ReplayGrant(
        "orders.commands.dlq/0/7", claims, "alice"
    )


def test_a_command_without_replay_headers_is_no_replay() -> None:
    assert read_replay(SIGNER, incoming([("traceparent", b"00-ab-cd-01")])) is None


def test_a_replay_grant_on_another_command_or_topic_grants_nothing() -> None:
    headers = grant_headers()
    assert read_replay(SIGNER, incoming(headers, value=b'{"type": "order.create"}')) is None
    assert read_replay(SIGNER, incoming(headers, key=b"O-2")) is None
    assert read_replay(SIGNER, incoming(headers, key=None)) is None
    assert read_replay(SIGNER, incoming(headers, topic="purchase-orders.commands")) is None
    assert read_replay(Signer(bytes(32), "k1"), incoming(headers)) is None
    assert read_replay(Signer(KEY, "k2"), incoming(headers)) is None


def test_a_replay_with_an_altered_header_grants_nothing() -> None:
    origin, authority, signature = grant_headers()
    operator_only = json.dumps({"claims": None, "replayed_by": "mallory"}).encode()
    staff = json.loads(authority[1])
    staff["claims"]["role"] = "staff"
    for altered in (
        [(REPLAYED_FROM, b"orders.commands.dlq/0/8"), authority, signature],
        [origin, (REPLAY_AUTHORITY, operator_only), signature],
        [origin, (REPLAY_AUTHORITY, json.dumps(staff).encode()), signature],
        [origin, authority, (REPLAY_SIGNATURE, signature[1][:-1] + b"0")],
        [origin, authority],
        [origin, signature],
        [origin],
        [(REPLAYED_FROM, b"anything")],
    ):
        assert read_replay(SIGNER, incoming(altered)) is None, altered


@pytest.mark.parametrize("repeated", [0, 1, 2])
def test_repeated_replay_headers_grant_nothing(repeated: int) -> None:
    headers = grant_headers()
    assert read_replay(SIGNER, incoming([*headers, headers[repeated]])) is None
    assert read_replay(SIGNER, incoming([headers[repeated], *headers])) is None


def test_a_replay_grant_for_a_key_is_the_same_for_an_absent_key_as_for_an_empty_one() -> None:
    headers = replay_headers(SIGNER, COMMANDS, None, b"v", "o", None, "alice")
    assert read_replay(SIGNER, incoming(headers, key=b"", value=b"v")) == ReplayGrant(
        "o", None, "alice"
    )


def test_a_signer_never_shows_its_key() -> None:
    assert KEY.hex() not in repr(SIGNER)
    assert str(KEY) not in repr(SIGNER)
    with pytest.raises(ValueError):  # noqa: PT011
        Signer(b"short", "k1")
    with pytest.raises(ValueError):  # noqa: PT011
        Signer(KEY, "k:1")


def test_the_dead_letters_the_service_writes_are_signed_and_record_their_authority() -> None:
    family = purchase_order_family("t.")
    received = IncomingMessage(
        family.topics.commands,
        1,
        9,
        0,
        b"PO-1",
        b"{not json",
        (
            ("authorization", b"Bearer secret"),
            # A sender's own "authority": it must never be read back as the service's.
            (
                DEAD_LETTER_AUTHORITY,
                authority_json(Claims("ops", "iss", "staff", None, frozenset())),
            ),
            ("X-Dead-Letter-Reason", b"all fine"),
            ("traceparent", b"00-ab-cd-01"),
        ),
    )
    written = dead_letter_message(family, received, "invalid", CUSTOMER, SIGNER)
    assert authentic(written)
    assert [name for name, _ in written.headers] == [
        "traceparent",
        "x-dead-letter-reason",
        "x-dead-letter-source",
        DEAD_LETTER_AUTHORITY,
        DEAD_LETTER_SIGNATURE,
    ]
    assert authority_from_json(dict(written.headers)[DEAD_LETTER_AUTHORITY]) == CUSTOMER
    assert b"secret" not in b"".join(value for _, value in written.headers)

    sealed = sealed_dead_letter_message(
        family, received, "invalid", uuid.uuid4(), b"sealed bytes", None, SIGNER
    )
    assert authentic(sealed)
    assert dict(sealed.headers)[DEAD_LETTER_AUTHORITY] == b"null"


def test_a_signer_signs_with_its_newest_key_and_verifies_with_every_one() -> None:
    old = Signer(b"o" * 32, "old")
    signed_before = signed_letter(old, letter())
    rotated = Signer(b"n" * 32, "new", {"old": b"o" * 32})
    signed_after = signed_letter(rotated, letter())
    assert authentic(signed_before, rotated)
    assert authentic(signed_after, rotated)
    assert not authentic(signed_after, old)  # a process that has not adopted the new key
    old.adopt(rotated)
    assert authentic(signed_after, old)
    assert old.key_id == "new"
    assert not authentic(signed_before, Signer(b"n" * 32, "new"))  # the old key retired
