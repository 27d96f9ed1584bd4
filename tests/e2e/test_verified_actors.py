"""Verified actors on the real pipeline: with AUTH_MODE=required nobody acts as someone else,
refusals change nothing, and a token is never stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.app.auth import AuthMode
from service.settings import Settings
from tests.support import (
    Record,
    WireProbe,
    create_order,
    delete_order,
    order_status,
    running_service,
)

ISSUER = "https://id.example.test"
SECRET = b"e2e-shared-secret-thirty-two-by!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(claims: dict[str, Any], header: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would: unsigned, or HMAC-signed with `secret`."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Settings:
    keys = tmp_path / "keys.json"
    secret = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"kty": "oct", "kid": "svc-1", "alg": "HS256", "k": secret},
                    {**public, "kid": "idp-1", "alg": "RS256"},
                ]
            }
        )
    )
    return settings.model_copy(
        update={"auth_mode": AuthMode.REQUIRED, "auth_keys_file": keys, "auth_issuers": ISSUER}
    )


def claims_for(subject: str, role: str, scope: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": "order-lifecycle-service",
        "sub": subject,
        "role": role,
        "tenant": "tenant-a",
        "scope": scope,
        "exp": now + 300,
        **extra,
    }


def token(subject: str, role: str, scope: str, **extra: Any) -> str:
    claims = claims_for(subject, role, scope, **extra)
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "svc-1"})


async def send(probe: WireProbe, body: dict[str, Any], bearer: str | None) -> Record:
    """Send with the token (if any) and return the command's latest outcome."""
    before = len(probe.outcomes(body["command_id"]))
    headers = [("authorization", f"Bearer {bearer}".encode())] if bearer else []
    await probe.send_raw(str(body["order_id"]).encode(), json.dumps(body).encode(), headers)
    await probe.wait_for(lambda _: len(probe.outcomes(body["command_id"])) > before)
    return probe.outcomes(body["command_id"])[before]


def error(record: Record) -> tuple[str, str, str | None]:
    [problem] = record.body["errors"]
    return problem["error_type"], problem["error_code"], problem["field"]


async def test_required_mode_on_the_real_pipeline(
    secured: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    checkout = token("checkout", "service", "orders:write")
    customer_1 = token("CUST-1", "customer", "orders:write orders:delete")
    async with running_service(secured):
        for order_id, customer in (("O-1", "CUST-1"), ("O-2", "CUST-2")):
            created = await send(
                order_probe, create_order(order_id, details={"customer_id": customer}), checkout
            )
            assert created.body["type"] == "order.created"

        # No token: refused, nothing recorded; the same command with a token is then decided.
        ready = order_status("O-1", "ready")
        refused = await send(order_probe, ready, None)
        assert error(refused) == ("unauthenticated", "unauthenticated", None)
        accepted = await send(order_probe, ready, checkout)
        assert accepted.body["type"] == "order.status_changed"
        assert accepted.body["actor"] == {"type": "service", "id": "checkout"}

        # A customer deletes their own order, and cannot tell another's from a missing one.
        own = create_order("O-3", details={"customer_id": "CUST-1"})
        await send(order_probe, own, checkout)
        deleted = await send(order_probe, delete_order("O-3"), customer_1)
        assert deleted.body["type"] == "order.deleted"
        foreign = await send(order_probe, delete_order("O-2"), customer_1)
        missing = await send(order_probe, delete_order("O-404"), customer_1)
        assert error(foreign) == error(missing) == ("not_found", "not_found", "order_id")
        assert foreign.body["errors"][0]["message"] == missing.body["errors"][0]["message"].replace(
            "O-404", "O-2"
        )

        stolen = claims_for("CUST-2", "customer", "orders:delete")
        unauthenticated = ("unauthenticated", "unauthenticated", None)
        refusals = {
            "not yet valid": (
                token("CUST-2", "customer", "orders:delete", nbf=int(time.time()) + 600),
                delete_order("O-2"),
                unauthenticated,
            ),
            "unknown key id": (
                jwt.encode(stolen, SECRET, algorithm="HS256", headers={"kid": "svc-9"}),
                delete_order("O-2"),
                unauthenticated,
            ),
            "altered signature": (
                token("CUST-2", "customer", "orders:delete")[:-4] + "AAAA",
                delete_order("O-2"),
                unauthenticated,
            ),
            "alg none": (
                forged(stolen, {"alg": "none", "kid": "svc-1", "typ": "JWT"}, None),
                delete_order("O-2"),
                unauthenticated,
            ),
            "algorithm confusion": (
                forged(stolen, {"alg": "HS256", "kid": "idp-1", "typ": "JWT"}, RSA_PUBLIC_PEM),
                delete_order("O-2"),
                unauthenticated,
            ),
            "expired": (
                token("CUST-1", "customer", "orders:delete", exp=int(time.time()) - 120),
                delete_order("O-2"),
                ("unauthenticated", "unauthenticated", None),
            ),
            "other tenant": (
                token("CUST-2", "customer", "orders:delete", tenant="tenant-b"),
                delete_order("O-2"),
                ("forbidden", "forbidden", "tenant_id"),
            ),
            "no scope": (
                token("CUST-2", "customer", "orders:write"),
                delete_order("O-2"),
                ("forbidden", "forbidden", "type"),
            ),
            "forged actor": (
                customer_1,
                delete_order("O-2", actor=("customer", "CUST-2")),
                ("forbidden", "forbidden", "actor"),
            ),
        }
        for name, (bearer, body, expected) in refusals.items():
            assert error(await send(order_probe, body, bearer)) == expected, name

        # A malformed command sent with a token: its dead letter keeps no token.
        broken = create_order("O-5")
        broken["payload"]["items"] = "not a list"
        await send(order_probe, broken, checkout)
        await order_probe.wait_for(lambda _: bool(order_probe.on(order_probe.topics.dead_letters)))

    # Refusals changed nothing: O-2 is as it was created.
    assert await db.fetchval("SELECT version FROM orders WHERE order_id = 'O-2'") == 1
    # History records who acted, proven by whom.
    acted = await db.fetchrow(
        "SELECT actor_type, actor_id, actor_issuer FROM order_history"
        " WHERE order_id = 'O-1' AND version = 2"
    )
    assert tuple(acted) == ("service", "checkout", ISSUER)
    for record in order_probe.records:
        assert "authorization" not in record.headers
        assert checkout.encode() not in record.value
    assert (
        await db.fetchval(
            "SELECT count(*) FROM order_history WHERE document::text LIKE '%' || $1 || '%'",
            checkout.split(".")[1],
        )
        == 0
    )


@pytest.mark.parametrize(
    ("mode", "without_token", "with_bad_token"),
    [
        (AuthMode.OFF, "order.created", "order.created"),
        (AuthMode.VERIFY, "order.created", "unauthenticated"),
        (AuthMode.REQUIRED, "unauthenticated", "unauthenticated"),
    ],
)
async def test_each_mode_on_the_real_pipeline(
    secured: Settings,
    order_probe: WireProbe,
    db: asyncpg.Connection,
    mode: AuthMode,
    without_token: str,
    with_bad_token: str,
) -> None:
    expired = token("checkout", "service", "orders:write", exp=int(time.time()) - 120)

    def answer(record: Record) -> str:
        return record.body.get("type") if "errors" not in record.body else error(record)[1]

    async with running_service(secured.model_copy(update={"auth_mode": mode})):
        plain = create_order("O-1", actor=("service", "checkout"))
        outcome = await send(order_probe, plain, None)
        assert answer(outcome) == without_token
        if without_token == "order.created":  # believed as claimed, and recorded as claimed
            assert outcome.body["actor"] == {"type": "service", "id": "checkout"}
            assert tuple(
                await db.fetchrow(
                    "SELECT actor_type, actor_id, actor_issuer FROM order_history"
                    " WHERE order_id = 'O-1'"
                )
            ) == ("service", "checkout", None)
        assert answer(await send(order_probe, create_order("O-2"), expired)) == with_bad_token
