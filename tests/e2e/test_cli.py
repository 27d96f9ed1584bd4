"""The operator CLI as the README uses it: a separate process talking to the running service."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jwt

from service.settings import Settings
from tests.support import (
    WireProbe,
    details,
    order_details,
    order_service,
    running_service,
)
from tests.tokens import secured, write_keys


async def test_send_prints_every_outcome_and_show_reads_the_order_back(
    settings: Settings,
) -> None:
    async with running_service(settings):
        created = await order_service(
            settings, "send", "purchase_order.create", "PO-1", json.dumps(details())
        )
        opened = await order_service(
            settings, "send", "purchase_order.change_status", "PO-1", '{"status": "open"}'
        )
        received = await order_service(
            settings,
            "send",
            "purchase_order.record_receipt",
            "PO-1",
            '{"receipt_id": "RCV-1", "lines": [{"sku": "WIDGET-001", "quantity": 100}]}',
        )
        previewed = await order_service(
            settings, "send", "purchase_order.delete", "PO-1", "--dry-run"
        )
        refused = await order_service(settings, "send", "purchase_order.delete", "PO-1")
        shown = await order_service(settings, "show", "PO-1")
        await order_service(
            settings, "send", "purchase_order.create", "PO-2", json.dumps(details())
        )
        await order_service(settings, "send", "purchase_order.delete", "PO-2")
        gone = await order_service(settings, "show", "PO-2")
        missing = await order_service(settings, "show", "PO-404")

    assert created.code == 0, created.stderr
    assert [d["type"] for d in created.documents()] == ["purchase_order.created"]
    assert opened.code == 0
    assert [d["type"] for d in received.documents()] == [
        "purchase_order.status_changed",
        "purchase_order.receipt_recorded",
        "purchase_order.status_changed",
    ]
    assert refused.code == 1
    [rejection] = refused.documents()
    assert [e["error_code"] for e in rejection["errors"]] == ["invalid_status", "has_dependencies"]
    assert previewed.code == 1  # it would be refused
    [preview] = previewed.documents()
    assert preview["would_accept"] is False
    assert preview["errors"] == rejection["errors"]

    assert shown.code == 0
    assert "status=received  version=5" in shown.stdout
    assert "RCV-1" in shown.stdout
    history = [line.split() for line in shown.stdout.splitlines() if line.startswith("  v")]
    assert [(entry[0], entry[2]) for entry in history] == [
        ("v1", "purchase_order.created"),
        ("v2", "purchase_order.status_changed"),
        ("v3", "purchase_order.status_changed"),
        ("v4", "purchase_order.receipt_recorded"),
        ("v5", "purchase_order.status_changed"),
    ]
    # `send` names its user as the actor; without token verification that is only claimed.
    assert all(
        " by user:" in line and line.endswith("(claimed)")
        for line in shown.stdout.splitlines()
        if line.startswith("  v")
    )
    assert gone.code == 1
    assert "was deleted" in gone.stderr
    assert "last version 2" in gone.stderr
    assert missing.code == 1
    assert "not found" in missing.stderr


async def test_order_commands_carry_the_actor_and_show_prints_the_addresses(
    settings: Settings,
) -> None:
    async with running_service(settings):
        created = await order_service(
            settings,
            "send",
            "order.create",
            "O-1",
            json.dumps(order_details()),
            "--actor",
            "customer:CUST-1",
        )
        foreign = await order_service(
            settings, "send", "order.delete", "O-1", "--actor", "customer:CUST-2"
        )
        shown = await order_service(settings, "show", "O-1")
        unknown = await order_service(settings, "send", "invoice.create", "X-1")

    assert created.code == 0, created.stderr
    assert [d["type"] for d in created.documents()] == ["order.created"]
    assert foreign.code == 1
    assert [e["error_code"] for e in foreign.documents()[0]["errors"]] == ["not_found"]
    assert shown.code == 0
    assert "order O-1  status=placed  version=1" in shown.stdout
    assert "Ada Lovelace" in shown.stdout
    assert "12 Analytical Way" in shown.stdout
    assert unknown.code == 2
    assert "starts with none of" in unknown.stderr


async def test_send_signs_bound_tokens_and_token_has_no_all_scope_default(
    settings: Settings, tmp_path: Path, order_probe: WireProbe
) -> None:
    required = secured(settings, write_keys(tmp_path / "keys.json"))
    body = json.dumps(order_details())
    async with running_service(required):
        created = await order_service(
            required,
            "send",
            "order.create",
            "O-1",
            body,
            "--tenant",
            "tenant-a",
            "--sign",
            "--actor",
            "service:checkout",
        )
        fulfil = await order_service(
            required,
            "send",
            "order.change_status",
            "O-1",
            '{"status": "ready"}',
            "--tenant",
            "tenant-a",
            "--sign",
            "--actor",
            "customer:CUST-1",
        )
        command_id = str(uuid.uuid4())
        minted = await order_service(
            required,
            "token",
            "--subject",
            "CUST-1",
            "--role",
            "customer",
            "--tenant",
            "tenant-a",
            "--command-id",
            command_id,
            "--command-type",
            "order.delete",
        )
        token = minted.stdout.strip()
        deleted = await order_service(
            required, "send", "order.delete", "O-1", "--tenant", "tenant-a", "--token", token
        )
    no_scope = await order_service(required, "token", "--subject", "x")
    too_long = await order_service(
        required, "token", "--subject", "x", "--scope", "orders:write", "--ttl", "7200"
    )

    assert created.code == 0, created.stderr
    [receipt] = created.documents()  # `send` prints the reply's events, by reference
    event = await order_probe.event(receipt["event_id"])
    assert event["actor"] == {"type": "service", "id": "checkout", "verified": True}
    assert fulfil.code == 1
    [rejection] = fulfil.documents()
    assert [(e["error_code"], e["field"]) for e in rejection["errors"]] == [
        ("forbidden", "payload.status")
    ]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["jti"] == command_id
    assert claims["scope"] == "orders:delete"
    assert claims["exp"] - claims["iat"] == 300
    assert deleted.code == 0, deleted.stderr
    [deletion] = deleted.documents()
    gone = await order_probe.event(deletion["event_id"])
    assert (gone["type"], gone["command_id"]) == ("order.deleted", command_id)
    assert no_scope.code != 0
    assert "--command-type or --scope" in no_scope.stderr
    assert too_long.code != 0
