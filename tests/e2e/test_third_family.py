"""A family the service was not built with, registered by a setting alone: stock transfers
(tests/transfers/) go through the real pipeline — Kafka in, the gate, the inbox, the kernel,
Postgres, the outbox and the relay, Kafka out — and the CLI shows them, with no change to the
kernel, the ports, the processor or the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from contracts.topics import INVENTORY_MOVEMENTS
from service.settings import Settings
from tests.support import WireProbe, running_service, service_env
from tests.tokens import bearer, customer_token, secured, service_token, write_keys
from tests.transfers.family import transfer_family
from tests.transfers.wire import TransferRejection, TransferRequested, TransferShipped

REGISTRATION = "tests.transfers.family:transfer_family"


def transfer(command_type: str, transfer_id: str, **fields: Any) -> dict[str, Any]:
    payload = fields.pop("payload", {})
    return {
        "command_id": str(uuid.uuid4()),
        "type": command_type,
        "tenant_id": "tenant-a",
        "transfer_id": transfer_id,
        "payload": payload,
        **fields,
    }


def request(transfer_id: str, **fields: Any) -> dict[str, Any]:
    payload = {
        "sku": "SKU-1",
        "quantity": 5,
        "from_warehouse_id": "WH-1",
        "to_warehouse_id": "WH-2",
    }
    return transfer("transfer.request", transfer_id, payload=payload, **fields)


async def test_a_registered_family_runs_end_to_end(
    settings: Settings, topic_prefix: str, db: asyncpg.Connection
) -> None:
    settings = settings.model_copy(update={"extra_families": [REGISTRATION]})
    topics = transfer_family(topic_prefix).topics
    probe = WireProbe(
        settings.kafka_bootstrap_servers,
        topics,
        f"{topic_prefix}{INVENTORY_MOVEMENTS}",
        id_field="transfer_id",
    )
    await probe.start()
    try:
        async with running_service(settings):
            first = request("T-1")
            requested = await probe.send_and_wait(first)
            shipped = await probe.send_and_wait(
                transfer("transfer.ship", "T-1", expected_version=1)
            )
            again = await probe.send_and_wait(transfer("transfer.ship", "T-1"))
            same_place = request("T-2")
            same_place["payload"]["to_warehouse_id"] = "WH-1"
            refused = await probe.send_and_wait(same_place)
            invalid = request("T-3")
            invalid["payload"]["quantity"] = 0
            rejected_invalid = await probe.send_and_wait(invalid)
            forbidden = await probe.send_and_wait(
                request("T-4", actor={"type": "customer", "id": "CUST-1"})
            )
            preview = await probe.preview(transfer("transfer.ship", "T-1"))
            # A redelivered command is decided once: no second outcome.
            await probe.send(first)
            await probe.send_and_wait(request("T-5"))
    finally:
        await probe.stop()

    created = TransferRequested.model_validate_json(requested.value)
    assert (created.type, created.transfer_id, created.version) == ("transfer.requested", "T-1", 1)
    assert created.data.status == "requested"
    assert requested.key == "T-1"
    moved = TransferShipped.model_validate_json(shipped.value)
    assert (moved.type, moved.version, moved.data.status) == ("transfer.shipped", 2, "shipped")

    def errors(record: Any) -> list[tuple[str, str | None]]:
        assert record.topic == topics.rejections
        rejection = TransferRejection.model_validate_json(record.value)
        return [(e.error_code, e.field) for e in rejection.errors]

    assert errors(again) == [("invalid_status", None)]
    assert errors(refused) == [("invalid_request", "payload.to_warehouse_id")]
    assert errors(rejected_invalid) == [("invalid_request", "payload.quantity")]
    assert errors(forbidden) == [("forbidden", "type")], "the family's own role table applies"
    assert preview["would_accept"] is False
    assert preview["transfer_id"] == "T-1"
    assert len(probe.outcomes(first["command_id"])) == 1
    assert [r.key for r in probe.on(topics.dead_letters)] == ["T-3"]

    row = await db.fetchrow(
        "SELECT status, version FROM documents WHERE kind = 'transfers' AND document_id = 'T-1'"
    )
    assert dict(row) == {"status": "shipped", "version": 2}
    history = await db.fetch(
        "SELECT version, event_type FROM document_history"
        " WHERE kind = 'transfers' AND document_id = 'T-1' ORDER BY version"
    )
    assert [(h["version"], h["event_type"]) for h in history] == [
        (1, "transfer.requested"),
        (2, "transfer.shipped"),
    ]

    # The CLI finds the family through the same setting.
    env = {**service_env(settings), "EXTRA_FAMILIES": json.dumps([REGISTRATION])}
    shown = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "show",
        "T-1",
        "--tenant",
        "tenant-a",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await shown.communicate()
    assert shown.returncode == 0, err.decode()
    assert "transfer T-1  status=shipped  version=2" in out.decode()
    assert "transfer.shipped" in out.decode()


async def test_a_registered_family_is_guarded_by_its_own_authority(
    settings: Settings, topic_prefix: str, tmp_path: Path
) -> None:
    """Tokens name scopes, not families: a token good for orders sends no transfer; the
    family's role table keeps customers out; a command of another family sent to its topic is
    not taken for one of its own."""
    settings = secured(settings, write_keys(tmp_path / "keys.json")).model_copy(
        update={"extra_families": [REGISTRATION]}
    )
    topics = transfer_family(topic_prefix).topics
    probe = WireProbe(
        settings.kafka_bootstrap_servers,
        topics,
        f"{topic_prefix}{INVENTORY_MOVEMENTS}",
        id_field="transfer_id",
    )

    async def ask(body: dict[str, Any], token: str) -> list[tuple[str, str | None]]:
        await probe.send_raw(body["transfer_id"].encode(), json.dumps(body).encode(), bearer(token))
        record = await probe.outcome(body["command_id"])
        if record.topic == topics.events:
            return []
        return [(e["error_code"], e["field"]) for e in record.body["errors"]]

    await probe.start()
    try:
        async with running_service(settings):
            other_scope = request("T-1")
            refused_scope = await ask(
                other_scope, service_token(other_scope, "wms", "orders:write")
            )
            by_customer = request("T-2")
            refused_role = await ask(
                by_customer, customer_token(by_customer, "CUST-1", "transfers:write")
            )
            allowed = request("T-3")
            accepted = await ask(allowed, service_token(allowed, "wms", "transfers:write"))
            stranger = transfer("customer.redact", "T-4", customer_id="CUST-1")
            refused_type = await ask(stranger, service_token(stranger, "wms", "customers:redact"))
    finally:
        await probe.stop()

    assert refused_scope == [("forbidden", "type")]
    assert refused_role == [("forbidden", "type")]
    assert accepted == []
    assert [code for code, _ in refused_type] == ["invalid_request"]
    [letter] = probe.on(topics.dead_letters)
    assert b"CUST-1" not in letter.value, "a letter that may hold personal data is sealed"
