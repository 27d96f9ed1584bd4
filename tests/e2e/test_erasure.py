"""The proof of erasure: unique canaries in every personal field, then a search everywhere.

The test runs its own Postgres (durable, so WAL and data files are real) and the service as a
separate process with its log in a file, sends an order whose every personal field holds a
canary, overwrites the shipping address twice (the seed's complaint: old addresses stay in
history), schedules a redaction, ships the order (which carries the redaction out), and then
searches a plain pg_dump, the data files after CHECKPOINT, the WAL, the server log, the service
log and every topic the service writes, read from the beginning.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.crypto import DecryptionError, MasterKey, MasterKeyring, new_key
from service.adapters.database import migrate
from service.adapters.personal_data import WRAPPED_KEY_TABLES, rewrap_chunk
from service.devstack.embedded import EmbeddedPostgres, _postgres_bin, _run_as
from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import (
    ServiceProcess,
    WireProbe,
    address,
    create_order,
    order_command,
    order_status,
    service_env,
    update_order,
)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pgdata", free_port(), durable=True)
    server.start()
    yield server
    server.remove()


@pytest.fixture
async def erasure_settings(own_postgres: EmbeddedPostgres, settings: Settings) -> Settings:
    await migrate(own_postgres.url)
    return settings.model_copy(update={"database_url": own_postgres.url})


def canaries() -> dict[str, str]:
    tag = secrets.token_hex(5)
    digits = str(int(tag, 16)).rjust(13, "7")[:13]
    return {
        "name": f"Name{tag}",
        "line": f"Line{tag}",
        "city": f"City{tag}",
        "postal_code": f"P{tag}",
        "phone": f"+{digits}",
        "email": f"mail{tag}@example.org",
    }


def canary_address(c: dict[str, str]) -> dict[str, Any]:
    return address(
        c["name"],
        lines=[c["line"]],
        city=c["city"],
        postal_code=c["postal_code"],
        phone=c["phone"],
        email=c["email"],
    )


def found_in(blob: bytes, values: list[str]) -> list[str]:
    return [v for v in values if v.encode() in blob]


def files_under(*roots: Path) -> bytes:
    return b"".join(
        p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()
    )


def written_by_the_service(settings: Settings) -> list[str]:
    """Every topic the service writes, dead-letter topics included."""
    families = [
        DocumentTopics.for_family(f, settings.topic_prefix) for f in (ORDERS, PURCHASE_ORDERS)
    ]
    return [
        *(
            t
            for family in families
            for t in (family.events, family.rejections, family.dead_letters, family.state)
        ),
        f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
    ]


async def read_from_the_beginning(settings: Settings, topics: list[str]) -> bytes:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    chunks: list[bytes] = []
    try:
        while batches := await consumer.getmany(timeout_ms=2000):
            for records in batches.values():
                for r in records:
                    chunks += [r.key or b"", r.value or b"", *(v or b"" for _, v in r.headers)]
    finally:
        await consumer.stop()
    return b"\n".join(chunks)


def pg_dump(server: EmbeddedPostgres) -> bytes:
    return subprocess.run(
        [
            str(_postgres_bin() / "pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            server.database,
        ],
        capture_output=True,
        check=True,
        user=_run_as(),
    ).stdout


async def show(settings: Settings, order_id: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "show",
        order_id,
        "--tenant",
        "tenant-a",
        env=service_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stdout.decode()


async def test_a_redacted_order_leaves_no_trace_anywhere(
    erasure_settings: Settings,
    own_postgres: EmbeddedPostgres,
    order_probe: WireProbe,
    tmp_path: Path,
) -> None:
    settings, wire = erasure_settings, order_probe
    first, second, third, billing = canaries(), canaries(), canaries(), canaries()
    every_canary = [v for c in (first, second, third, billing) for v in c.values()]
    service = ServiceProcess(settings, tmp_path / "service.log", log_level="DEBUG")
    service.start()
    db = await asyncpg.connect(settings.database_url)
    try:
        details = {
            "shipping_address": canary_address(first),
            "billing_address": canary_address(billing),
        }
        await wire.events_of(create_order("O-1", details=details))
        await wire.events_of(update_order("O-1", {"shipping_address": canary_address(second)}))
        await wire.events_of(update_order("O-1", {"shipping_address": canary_address(third)}))
        [scheduled] = await wire.events_of(order_command("order.redact", "O-1", {}))
        # A command that is refused and dead-lettered, with canaries in it and a bad email.
        unusable = create_order("O-2", details={"shipping_address": canary_address(first)})
        unusable["payload"]["billing_address"] = {**canary_address(billing), "email": "x@@y"}
        assert await wire.errors_of(unusable)

        # Positive control: the canaries are where they belong, readable by an operator.
        before = await show(settings, "O-1")
        assert found_in(before.encode(), list(third.values()) + list(billing.values()))
        captured = await db.fetch(
            "SELECT p.record_id, p.field_group, p.ciphertext, k.key_id, k.wrapped_key"
            " FROM personal_data p JOIN data_keys k USING (key_id)"
        )
        # Each new shipping address also brings a new phone and email (the contact group).
        versions = sorted(row["field_group"] for row in captured)
        assert versions == ["billing_address"] + ["contact"] * 3 + ["shipping_address"] * 3

        # Never in the clear, even before erasure: not in Postgres, not on Kafka.
        await db.execute("CHECKPOINT")
        assert found_in(pg_dump(own_postgres), every_canary) == []
        assert found_in(files_under(own_postgres.data_dir), every_canary) == []
        written = written_by_the_service(settings)
        assert found_in(await read_from_the_beginning(settings, written), every_canary) == []

        # Controls for the searches themselves: a value stored in the clear is found in the dump
        # and the files, and the commands the test sent are found on their topic.
        control = f"control{secrets.token_hex(6)}"
        await db.execute("CREATE TABLE search_control (v text)")
        await db.execute("INSERT INTO search_control VALUES ($1)", control)
        await db.execute("CHECKPOINT")
        assert found_in(pg_dump(own_postgres), [control]) == [control]
        assert found_in(files_under(own_postgres.data_dir), [control]) == [control]
        commands = await read_from_the_beginning(settings, [wire.topics.commands])
        assert found_in(commands, [first["name"]]) == [first["name"]]

        for status in ("ready", "fulfilled"):
            await wire.events_of(order_status("O-1", status))
        shipped = await wire.events_of(order_status("O-1", "sent"), count=2)
        after = await show(settings, "O-1")
        await db.execute("CHECKPOINT")
        dump = pg_dump(own_postgres)
        server_files = files_under(own_postgres.data_dir) + own_postgres.log_file.read_bytes()
        kafka = await read_from_the_beginning(settings, written)
        dead_letters = await read_from_the_beginning(settings, [wire.topics.dead_letters])
        assert dead_letters, "the unusable command was dead-lettered (sealed) and searched"
    finally:
        await db.close()
        service.stop()

    assert scheduled["type"] == "order.redaction_scheduled"
    assert [e["type"] for e in shipped] == ["order.status_changed", "order.redacted"]
    assert shipped[1]["data"]["groups"] == ["billing_address", "contact", "shipping_address"]
    assert "[redacted]" in after
    assert "status=sent" in after
    for place, blob in {
        "pg_dump": dump,
        "data files and WAL": server_files,
        "service log": (tmp_path / "service.log").read_bytes(),
        "kafka": kafka,
        "show": after.encode(),
    }.items():
        assert found_in(blob, every_canary) == [], place

    # The captured ciphertext cannot be opened: its data keys are gone from the database...
    remaining = await asyncpg.connect(settings.database_url)
    try:
        assert await remaining.fetchval("SELECT count(*) FROM data_keys") == 0
        assert (
            await remaining.fetchval(
                "SELECT count(*) FROM personal_data WHERE ciphertext IS NOT NULL"
            )
            == 0
        )
        # ...and once the master key is rotated, a wrapped key copied earlier (a backup) is dead.
        successor = MasterKey(new_key())
        rotating = MasterKeyring([successor, settings.load_master_key().current])
        for table in WRAPPED_KEY_TABLES:
            while await rewrap_chunk(remaining, rotating, table):
                pass
    finally:
        await remaining.close()
    for row in captured:
        with pytest.raises(DecryptionError):
            successor.unwrap(row["wrapped_key"], row["key_id"])
