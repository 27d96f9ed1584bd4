"""`order-service`: run the service, or talk to a running one (send, tail, show)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts.purchase_orders import PurchaseOrderSnapshot
from contracts.topics import INVENTORY_MOVEMENTS, PURCHASE_ORDERS, DocumentTopics
from service.settings import Settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

DEV_STACK_DIR = Path(".devstack")
DEV_POSTGRES_PORT = 54329
DEV_KAFKA_PORT = 9092


def _settings() -> Settings:
    return Settings()


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


async def _serve(settings: Settings) -> None:
    from service.entrypoints.app import create_app

    app = create_app(settings)
    await app.run(
        log_level=logging.getLevelName(settings.log_level.upper()),
        run_extra_options={"host": settings.health_host, "port": settings.health_port},
    )


@cli.command()
def serve() -> None:
    """Run the service against DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS."""
    settings = _settings()
    _configure_logging(settings.log_level)
    asyncio.run(_serve(settings))


@cli.command()
def dev() -> None:
    """Start embedded Postgres and Kafka (127.0.0.1:9092) and the service; Ctrl-C stops all."""
    from service.infra.provision import provisioned

    _configure_logging("INFO")
    shutil.rmtree(DEV_STACK_DIR, ignore_errors=True)  # the embedded broker keeps nothing either
    DEV_STACK_DIR.mkdir()
    with provisioned(
        DEV_STACK_DIR.resolve(),
        postgres_port=DEV_POSTGRES_PORT,
        kafka_port=DEV_KAFKA_PORT,
        allow_docker=False,
    ) as endpoints:
        os.environ["DATABASE_URL"] = endpoints.database_url
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = endpoints.kafka_bootstrap_servers
        os.environ["KAFKA_IDEMPOTENT_PRODUCER"] = str(endpoints.kafka_idempotent_producer)
        settings = _settings()
        typer.echo(
            f"Postgres {endpoints.database_url}\nKafka    {endpoints.kafka_bootstrap_servers}\n"
            f"Health   http://{settings.health_host}:{settings.health_port}/health",
            err=True,
        )
        asyncio.run(_serve(settings))


@cli.command()
def migrate() -> None:
    """Apply pending database migrations and exit."""
    from service.adapters.database import migrate as apply

    applied = asyncio.run(apply(_settings().database_url))
    typer.echo("\n".join(applied) if applied else "schema is up to date")


@cli.command()
def send(
    command_type: Annotated[str, typer.Argument(help="e.g. purchase_order.create")],
    document_id: Annotated[str, typer.Argument(help="the purchase order id, e.g. PO-1")],
    payload: Annotated[str, typer.Argument(help="the command's payload as JSON")] = "{}",
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
    expected_version: Annotated[int | None, typer.Option(help="optimistic check")] = None,
    command_id: Annotated[str | None, typer.Option(help="default: a new UUID")] = None,
    wait: Annotated[bool, typer.Option(help="wait for and print the outcome")] = True,
) -> None:
    """Send one command and print its outcome (events or the rejection)."""
    try:
        body_payload = json.loads(payload)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"payload is not JSON: {error}") from error
    envelope: dict[str, Any] = {
        "command_id": command_id or str(uuid.uuid4()),
        "type": command_type,
        "tenant_id": tenant,
        "purchase_order_id": document_id,
        "actor": {"type": "user", "id": os.environ.get("USER", "cli")},
        "payload": body_payload,
    }
    if expected_version is not None:
        envelope["expected_version"] = expected_version
    outcome_ok = asyncio.run(_send(_settings(), envelope, wait))
    raise typer.Exit(0 if outcome_ok else 1)


async def _send(settings: Settings, envelope: dict[str, Any], wait: bool) -> bool:
    from aiokafka import AIOKafkaProducer

    topics = DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix)
    watcher = await _outcome_watcher(settings, topics) if wait else None
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.commands,
            json.dumps(envelope).encode(),
            key=envelope["purchase_order_id"].encode(),
        )
    finally:
        await producer.stop()
    typer.echo(f"sent {envelope['type']} {envelope['command_id']}", err=True)
    if watcher is None:
        return True
    try:
        return await _print_outcome(watcher, topics, envelope["command_id"])
    finally:
        await watcher.stop()


async def _outcome_watcher(settings: Settings, topics: DocumentTopics) -> Any:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    await consumer.topics()  # loads cluster metadata, so partitions are known
    partitions = [
        TopicPartition(topic, p)
        for topic in (topics.events, topics.rejections)
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # fix the start before the command is sent
    return consumer


async def _print_outcome(consumer: Any, topics: DocumentTopics, command_id: str) -> bool:
    deadline = asyncio.get_running_loop().time() + 30
    accepted = False
    while asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                body = json.loads(record.value)
                if body.get("command_id") != command_id:
                    continue
                typer.echo(json.dumps(body, indent=2))
                if record.topic == topics.rejections:
                    return False
                accepted = True
        if accepted:
            return True
    typer.echo("no outcome within 30s: is the service running (make run)?", err=True)
    return False


@cli.command()
def tail(
    from_beginning: Annotated[bool, typer.Option(help="replay what is already there")] = False,
) -> None:
    """Follow events, rejections, dead letters and inventory movements as they are published."""
    asyncio.run(_tail(_settings(), from_beginning))


async def _tail(settings: Settings, from_beginning: bool) -> None:
    from aiokafka import AIOKafkaConsumer

    topics = DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix)
    watched = [
        topics.events,
        topics.rejections,
        topics.dead_letters,
        f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
    ]
    consumer = AIOKafkaConsumer(
        *watched,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                text = json.dumps(json.loads(record.value), indent=None)
            except (ValueError, TypeError):
                text = repr(record.value[:200])
            key = record.key.decode(errors="replace") if record.key else ""
            typer.echo(f"{record.topic} [{key}] {text}")
    finally:
        await consumer.stop()


@cli.command()
def show(
    document_id: Annotated[str, typer.Argument(help="the purchase order id, e.g. PO-1")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
) -> None:
    """Print a purchase order's current state and its history."""
    found = asyncio.run(_show(_settings(), tenant, document_id))
    raise typer.Exit(0 if found else 1)


async def _show(settings: Settings, tenant: str, document_id: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, version, document::text AS document, updated_at FROM purchase_orders"
            " WHERE tenant_id = $1 AND purchase_order_id = $2",
            tenant,
            document_id,
        )
        if row is None:
            tombstone = await conn.fetchrow(
                "SELECT last_version, deleted_at FROM purchase_order_tombstones"
                " WHERE tenant_id = $1 AND purchase_order_id = $2",
                tenant,
                document_id,
            )
            if tombstone is None:
                typer.echo(
                    f"purchase order {document_id!r} of tenant {tenant!r} not found", err=True
                )
            else:
                typer.echo(
                    f"purchase order {document_id!r} of tenant {tenant!r} was deleted at"
                    f" {tombstone['deleted_at'].isoformat()} (last version"
                    f" {tombstone['last_version']}); nothing else of it is kept",
                    err=True,
                )
            return False
        history = await conn.fetch(
            "SELECT version, event_type, command_id, recorded_at FROM purchase_order_history"
            " WHERE tenant_id = $1 AND purchase_order_id = $2 ORDER BY version",
            tenant,
            document_id,
        )
    finally:
        await conn.close()
    typer.echo(f"{document_id}  status={row['status']}  version={row['version']}")
    snapshot = PurchaseOrderSnapshot.model_validate_json(row["document"])
    typer.echo(snapshot.model_dump_json(indent=2))
    typer.echo("history:")
    for entry in history:
        typer.echo(
            f"  v{entry['version']}  {entry['recorded_at'].isoformat()}  {entry['event_type']}"
            f"  command {entry['command_id']}"
        )
    return True


def main() -> None:
    cli()
