"""Verified actors on the real pipeline: with AUTH_MODE=required nobody acts as someone else,
refusals change nothing, and a token is never stored."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest

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
from tests.tokens import (
    IDP_PUBLIC_PEM,
    ISSUER,
    SERVICE_SECRET,
    claims_for,
    customer_token,
    forged,
    service_token,
    write_keys,
)
from tests.tokens import secured as secure


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Settings:
    return secure(settings, write_keys(tmp_path / "keys.json"))


def token(body: dict[str, Any], subject: str, role: str, scope: str, **extra: Any) -> str:
    """A token bound to `body`: from the identity provider for customers, else a service's."""
    if role == "customer":
        return customer_token(body, subject, scope, **extra)
    return service_token(body, subject, scope, role=role, **extra)


async def send(probe: WireProbe, body: dict[str, Any], bearer: str | None) -> Record:
    """Send with the token (if any) and return the command's latest outcome."""
    before = len(probe.outcomes(body["command_id"]))
    headers = [("authorization", f"Bearer {bearer}".encode())] if bearer else []
    await probe.send_raw(str(body["order_id"]).encode(), json.dumps(body).encode(), headers)
    await probe.wait_for(lambda _: len(probe.outcomes(body["command_id"])) > before)
    return probe.outcomes(body["command_id"])[before]


Bearer = Callable[[dict[str, Any]], str]
"""The token to send with a command, made for that command."""


def error(record: Record) -> tuple[str, str, str | None]:
    [problem] = record.body["errors"]
    return problem["error_type"], problem["error_code"], problem["field"]


async def test_required_mode_on_the_real_pipeline(
    secured: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    def checkout(body: dict[str, Any]) -> str:
        return token(body, "checkout", "service", "orders:write")

    def customer_1(body: dict[str, Any]) -> str:
        return token(body, "CUST-1", "customer", "orders:write orders:delete")

    tokens_sent: list[str] = []
    async with running_service(secured):
        for order_id, customer in (("O-1", "CUST-1"), ("O-2", "CUST-2")):
            body = create_order(order_id, details={"customer_id": customer})
            created = await send(order_probe, body, checkout(body))
            assert created.body["type"] == "order.created"

        # No token: refused, nothing recorded; the same command with a token is then decided.
        ready = order_status("O-1", "ready")
        refused = await send(order_probe, ready, None)
        assert error(refused) == ("unauthenticated", "unauthenticated", None)
        tokens_sent.append(checkout(ready))
        accepted = await send(order_probe, ready, tokens_sent[-1])
        assert accepted.body["type"] == "order.status_changed"
        assert accepted.body["actor"] == {"type": "service", "id": "checkout", "verified": True}

        # A customer deletes their own order, and cannot tell another's from a missing one.
        own = create_order("O-3", details={"customer_id": "CUST-1"})
        await send(order_probe, own, checkout(own))
        delete_own = delete_order("O-3")
        deleted = await send(order_probe, delete_own, customer_1(delete_own))
        assert deleted.body["type"] == "order.deleted"
        delete_foreign, delete_missing = delete_order("O-2"), delete_order("O-404")
        foreign = await send(order_probe, delete_foreign, customer_1(delete_foreign))
        missing = await send(order_probe, delete_missing, customer_1(delete_missing))
        assert error(foreign) == error(missing) == ("not_found", "not_found", "order_id")
        assert foreign.body["errors"][0]["message"] == missing.body["errors"][0]["message"].replace(
            "O-404", "O-2"
        )

        unauthenticated = ("unauthenticated", "unauthenticated", None)
        target = delete_order("O-2")

        def stolen() -> dict[str, Any]:
            return claims_for(target, "CUST-2", "customer", "orders:delete")

        refusals: dict[str, tuple[Bearer, tuple[str, str, str | None]]] = {
            "not yet valid": (
                lambda b: token(
                    b, "CUST-2", "customer", "orders:delete", nbf=int(time.time()) + 600
                ),
                unauthenticated,
            ),
            "unknown key id": (
                lambda b: jwt.encode(
                    stolen(), SERVICE_SECRET, algorithm="HS256", headers={"kid": "svc-9"}
                ),
                unauthenticated,
            ),
            "altered signature": (
                lambda b: token(b, "CUST-2", "customer", "orders:delete")[:-4] + "AAAA",
                unauthenticated,
            ),
            "alg none": (
                lambda b: forged(stolen(), {"alg": "none", "kid": "svc-1", "typ": "JWT"}, None),
                unauthenticated,
            ),
            "algorithm confusion": (
                lambda b: forged(
                    stolen(), {"alg": "HS256", "kid": "idp-1", "typ": "JWT"}, IDP_PUBLIC_PEM
                ),
                unauthenticated,
            ),
            "expired": (
                lambda b: token(
                    b, "CUST-1", "customer", "orders:delete", exp=int(time.time()) - 120
                ),
                unauthenticated,
            ),
            "other tenant": (
                lambda b: token(b, "CUST-2", "customer", "orders:delete", tenant="tenant-b"),
                ("forbidden", "forbidden", "tenant_id"),
            ),
            "no scope": (
                lambda b: token(b, "CUST-2", "customer", "orders:write"),
                ("forbidden", "forbidden", "type"),
            ),
        }
        for name, (bearer, expected) in refusals.items():
            body = {**target, "command_id": str(uuid.uuid4())}
            target = body
            assert error(await send(order_probe, body, bearer(body))) == expected, name
        forged_actor = delete_order("O-2", actor=("customer", "CUST-2"))
        answer = await send(order_probe, forged_actor, customer_1(forged_actor))
        assert error(answer) == ("forbidden", "forbidden", "actor")

        # A malformed command sent with a token: its dead letter keeps no token.
        broken = create_order("O-5")
        broken["payload"]["items"] = "not a list"
        tokens_sent.append(checkout(broken))
        await send(order_probe, broken, tokens_sent[-1])
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
        for sent in tokens_sent:
            assert sent.encode() not in record.value
    for sent in tokens_sent:
        assert (
            await db.fetchval(
                "SELECT count(*) FROM order_history WHERE document::text LIKE '%' || $1 || '%'",
                sent.split(".")[1],
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
    def answer(record: Record) -> str:
        if "errors" in record.body:
            return error(record)[1]
        kind = record.body.get("type")
        assert isinstance(kind, str), record.body
        return kind

    settings = secured.model_copy(
        update={"auth_mode": mode, "auth_allow_claimed_actors": mode is not AuthMode.REQUIRED}
    )
    async with running_service(settings):
        plain = create_order("O-1", actor=("service", "checkout"))
        outcome = await send(order_probe, plain, None)
        assert answer(outcome) == without_token
        if without_token == "order.created":  # believed as claimed, and recorded as claimed
            assert outcome.body["actor"] == {"type": "service", "id": "checkout", "verified": False}
            assert tuple(
                await db.fetchrow(
                    "SELECT actor_type, actor_id, actor_issuer FROM order_history"
                    " WHERE order_id = 'O-1'"
                )
            ) == ("service", "checkout", None)
        second = create_order("O-2")
        expired = token(second, "checkout", "service", "orders:write", exp=int(time.time()) - 120)
        assert answer(await send(order_probe, second, expired)) == with_bad_token
