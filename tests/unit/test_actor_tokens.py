"""Actor tokens: what a verified token allows, and every way a token can fail to be one.

Real keys and signatures (PyJWT, cryptography); no servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from contracts.orders import ORDER_COMMAND
from contracts.purchase_orders import PURCHASE_ORDER_COMMAND
from service.adapters import jwt_tokens
from service.adapters.jwt_tokens import JwtVerifier
from service.app.auth import (
    AuthMode,
    Gate,
    InvalidToken,
    Refusal,
    Unauthorized,
)
from service.app.incoming import IncomingMessage
from service.app.orders.family import order_family
from service.app.parse import ValidCommand, parse_command
from service.app.ports import RecordedActor
from service.domain import orders
from service.domain.permissions import REQUIRED_SCOPE
from tests.support import (
    address,
    create_order,
    delete_order,
    order_command,
    order_status,
    redact_customer,
    update_order,
)

ISSUER = "https://id.example.test"
AUDIENCE = "order-lifecycle-service"
SECRET = b"a-shared-secret-of-thirty-two-b!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
FAMILY = order_family()
COMMAND_ID = uuid.uuid4()
"""Every command these tests build has this id, and every token is bound to it unless a test
says otherwise."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks(*extra: dict[str, Any]) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    return {
        "keys": [
            {**public, "kid": "rsa-1", "alg": "RS256", "issuers": [ISSUER]},
            {"kty": "oct", "kid": "svc-1", "alg": "HS256", "k": _b64(SECRET), "issuers": [ISSUER]},
            *extra,
        ]
    }


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(jwks()))
    return path


@pytest.fixture
def gate(keys_file: Path) -> Gate[Any]:
    return Gate(AuthMode.REQUIRED, verifier(keys_file), FAMILY.commands)


def verifier(keys_file: Path) -> JwtVerifier:
    return JwtVerifier(keys_file, issuers=[ISSUER], audience=AUDIENCE, leeway_seconds=5)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "CUST-1",
        "role": "customer",
        "tenant": "tenant-a",
        "scope": "orders:write orders:delete",
        "iat": now,
        "exp": now + 300,
        "jti": str(COMMAND_ID),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def rs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})


def command(body: dict[str, Any]) -> ValidCommand[Any]:
    body = {**body, "command_id": str(COMMAND_ID)}
    key = str(body.get("order_id", body.get("customer_id"))).encode()
    message = IncomingMessage("t", 0, 0, 0, key, json.dumps(body).encode())
    parsed = parse_command(message, 65536, FAMILY.commands)
    assert isinstance(parsed, ValidCommand)
    return parsed


def bearer(token: str) -> list[tuple[str, bytes]]:
    return [("authorization", f"Bearer {token}".encode())]


def refusal(outcome: object) -> tuple[str, str | None, str]:
    assert isinstance(outcome, Unauthorized), outcome
    [problem] = outcome.problems
    return problem.code.value, problem.field, problem.message


def test_a_valid_token_is_who_acts(gate: Gate[Any]) -> None:
    admitted = gate.admit(bearer(rs256()), command(delete_order("O-1")))
    assert isinstance(admitted, ValidCommand)
    assert admitted.actor == RecordedActor("customer", "CUST-1", ISSUER)
    assert admitted.command.actor == orders.Actor("customer", "CUST-1")


def test_a_shared_secret_signs_service_tokens(gate: Gate[Any]) -> None:
    token = jwt.encode(
        claims(sub="checkout", role="service"), SECRET, algorithm="HS256", headers={"kid": "svc-1"}
    )
    admitted = gate.admit(bearer(token), command(create_order("O-1")))
    assert isinstance(admitted, ValidCommand)
    assert admitted.actor == RecordedActor("service", "checkout", ISSUER)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: rs256(exp=int(time.time()) - 60), "it has expired"),
        (lambda: rs256(nbf=int(time.time()) + 600), "it is not valid yet"),
        (lambda: rs256(iss="https://evil.example"), "its issuer is not trusted"),
        (lambda: rs256(aud="another-service"), "it is meant for another audience"),
        (lambda: rs256(exp=None), "it has no 'exp' claim"),
        (
            lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-9"}),
            "its key id is not one of the configured keys",
        ),
        (lambda: rs256()[:-6] + "AAAAAA", "its signature does not verify"),
        (
            # alg none: no signature at all.
            lambda: _unsigned(claims(), {"alg": "none", "kid": "rsa-1", "typ": "JWT"}),
            "its key only verifies RS256",
        ),
        (
            # Algorithm confusion: HMAC "signed" with the RSA public key as the secret.
            lambda: _hs256_with(RSA_PUBLIC_PEM, claims(), kid="rsa-1"),
            "its key only verifies RS256",
        ),
        (lambda: "not.a.jwt", "not a JWT"),
    ],
)
def test_a_token_that_cannot_be_trusted_is_unauthenticated(
    gate: Gate[Any], token: Any, reason: str
) -> None:
    code, field, message = refusal(gate.admit(bearer(token()), command(delete_order("O-1"))))
    assert (code, field) == ("unauthenticated", None)
    assert message == f"the token is not valid: {reason}"


def _unsigned(body: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."


def _hs256_with(secret: bytes, body: dict[str, Any], kid: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(body).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def test_without_a_token_required_refuses_and_verify_believes_the_envelope(
    keys_file: Path,
) -> None:
    cmd = command(order_status("O-1", "ready", actor=("user", "clerk-7")))
    required = Gate(AuthMode.REQUIRED, verifier(keys_file), FAMILY.commands)
    code, _, message = refusal(required.admit([], cmd))
    assert code == "unauthenticated"
    assert "authorization: Bearer" in message
    verify = Gate(AuthMode.VERIFY, verifier(keys_file), FAMILY.commands)
    assert verify.admit([], cmd) == cmd
    assert cmd.actor == RecordedActor("user", "clerk-7")
    # verify: a token, when present, must still be valid.
    code, _, _ = refusal(verify.admit(bearer(rs256(exp=1)), cmd))
    assert code == "unauthenticated"
    # verify: what destroys data is never taken on the envelope's word.
    for body in (
        delete_order("O-1"),
        redact_customer("CUST-1"),
        order_command("order.redact", "O-1", {}),
    ):
        outcome = verify.admit([], command({**body, "actor": {"type": "system", "id": "x"}}))
        assert isinstance(outcome, Unauthorized)
        assert (outcome.cause, refusal(outcome)[0]) == (Refusal.TOKEN_REQUIRED, "unauthenticated")


def test_a_token_carries_only_the_command_it_is_bound_to(gate: Gate[Any]) -> None:
    copied = rs256(jti=str(uuid.uuid4()))  # a token read off the topic, bound to another command
    outcome = gate.admit(bearer(copied), command(delete_order("O-1")))
    assert isinstance(outcome, Unauthorized)
    assert outcome.cause is Refusal.UNBOUND_TOKEN
    assert refusal(outcome)[::2] == (
        "unauthenticated",
        "the token is bound to another command: its jti must be this command_id",
    )


def test_two_authorization_headers_are_refused_whatever_they_hold(gate: Gate[Any]) -> None:
    token = rs256()
    outcome = gate.admit([*bearer(token), *bearer(token)], command(delete_order("O-1")))
    assert isinstance(outcome, Unauthorized)
    assert outcome.cause is Refusal.SEVERAL_TOKENS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order_status("O-1", "ready"), "payload.status"),
        (order_status("O-1", "sent"), "payload.status"),
        (
            update_order(
                "O-1",
                {"items": [{"sku": "A", "quantity": 1, "unit_price": "1", "currency": "EUR"}]},
            ),
            "payload.items",
        ),
    ],
)
def test_a_customer_token_cannot_drive_fulfilment(
    gate: Gate[Any], body: dict[str, Any], field: str
) -> None:
    outcome = gate.admit(bearer(rs256()), command(body))
    assert isinstance(outcome, Unauthorized)
    assert outcome.cause is Refusal.ROLE_FORBIDDEN
    assert refusal(outcome)[:2] == ("forbidden", field)
    # ... and neither can a customer who only claims to be one, where claims are believed.
    claimed = Gate(AuthMode.OFF, None, FAMILY.commands).admit(
        [], command({**body, "actor": {"type": "customer", "id": "CUST-1"}})
    )
    assert isinstance(claimed, Unauthorized)
    assert refusal(claimed)[:2] == ("forbidden", field)


def test_a_customer_may_cancel_and_correct_an_address(gate: Gate[Any]) -> None:
    for body in (
        order_status("O-1", "cancelled", "customer"),
        update_order("O-1", {"shipping_address": address()}),
    ):
        assert isinstance(gate.admit(bearer(rs256()), command(body)), ValidCommand)


def test_a_replay_is_admitted_on_what_it_was_first_admitted_on_never_more(
    gate: Gate[Any], keys_file: Path
) -> None:
    customer = verifier(keys_file).verify(rs256())
    replayed = gate.admit_replay(command(delete_order("O-1")), customer)
    assert isinstance(replayed, ValidCommand)
    assert replayed.actor == RecordedActor("customer", "CUST-1", ISSUER)
    # A customer's command stays a customer's: fulfilment stays out of reach after a replay.
    assert isinstance(
        gate.admit_replay(command(order_status("O-1", "ready")), customer), Unauthorized
    )
    # Admitted on its own word when first sent: with tokens required, that is no authority.
    assert refusal(gate.admit_replay(command(delete_order("O-1")), None))[0] == "unauthenticated"


def test_off_ignores_tokens_entirely() -> None:
    cmd = command(delete_order("O-1"))
    assert Gate(AuthMode.OFF, None, FAMILY.commands).admit(bearer("garbage"), cmd) == cmd


@pytest.mark.parametrize(
    ("token", "body", "field", "words"),
    [
        (lambda: rs256(tenant="tenant-b"), delete_order("O-1"), "tenant_id", "tenant"),
        (lambda: rs256(scope="orders:write"), delete_order("O-1"), "type", "orders:delete"),
        (
            lambda: rs256(),
            delete_order("O-1", actor=("customer", "CUST-2")),
            "actor",
            "contradicts",
        ),
        (lambda: rs256(), delete_order("O-1", tenant_id="tenant-b"), "tenant_id", "tenant"),
    ],
)
def test_a_valid_token_that_does_not_allow_the_command_is_forbidden(
    gate: Gate[Any], token: Any, body: dict[str, Any], field: str, words: str
) -> None:
    code, found_field, message = refusal(gate.admit(bearer(token()), command(body)))
    assert (code, found_field) == ("forbidden", field)
    assert words in message


def test_a_token_without_an_actor_type_is_unauthenticated(gate: Gate[Any]) -> None:
    code, _, message = refusal(
        gate.admit(bearer(rs256(role="admin")), command(delete_order("O-1")))
    )
    assert code == "unauthenticated"
    assert "actor type" in message


def test_the_token_is_never_quoted(gate: Gate[Any]) -> None:
    token = rs256(exp=int(time.time()) - 60)
    outcome = gate.admit(bearer(token), command(delete_order("O-1")))
    assert isinstance(outcome, Unauthorized)
    assert token not in outcome.reason
    assert token.split(".")[1] not in outcome.reason


def test_keys_rotate_without_a_restart(keys_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwt_tokens, "RELOAD_CHECK_SECONDS", 0.0)
    check = verifier(keys_file)
    new_secret = uuid.uuid4().bytes * 2
    token = jwt.encode(claims(), new_secret, algorithm="HS256", headers={"kid": "svc-2"})
    with pytest.raises(InvalidToken):
        check.verify(token)
    rotated = {
        "kty": "oct",
        "kid": "svc-2",
        "alg": "HS256",
        "k": _b64(new_secret),
        "issuers": [ISSUER],
    }
    keys_file.write_text(json.dumps(jwks(rotated)))
    later = time.time() + 5
    os.utime(keys_file, (later, later))
    assert check.verify(token).subject == "CUST-1"


def test_every_command_type_needs_a_scope() -> None:
    types = set()
    for adapter in (PURCHASE_ORDER_COMMAND, ORDER_COMMAND):
        types |= set(adapter.json_schema()["discriminator"]["mapping"])
    assert set(REQUIRED_SCOPE) == types


def test_a_replay_on_a_withdrawn_issuer_is_admitted_no_more(
    gate: Gate[Any], keys_file: Path
) -> None:
    first = verifier(keys_file).verify(rs256())
    withdrawn = replace(first, issuer="https://withdrawn.example.test")
    outcome = gate.admit_replay(command(delete_order("O-1")), withdrawn)
    assert isinstance(outcome, Unauthorized)
    assert refusal(outcome)[0] == "unauthenticated"
    assert "no longer trusted" in refusal(outcome)[2]
