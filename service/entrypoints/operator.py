"""What the CLI does against a running service: send a command, follow topics, show an order."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

from contracts.purchase_orders import PurchaseOrderSnapshot
from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.settings import Settings

OUTCOME_WAIT_SECONDS = 30


class Echo(Protocol):
    def __call__(self, message: str, *, err: bool = False) -> None: ...


@dataclass(frozen=True)
class CliFamily:
    command_prefix: str
    topic_family: str
    id_field: str

    def topics(self, settings: Settings) -> DocumentTopics:
        return DocumentTopics.for_family(self.topic_family, settings.topic_prefix)


FAMILIES = (
    CliFamily("purchase_order.", PURCHASE_ORDERS, "purchase_order_id"),
    CliFamily("order.", ORDERS, "order_id"),
    CliFamily("customer.", ORDERS, "customer_id"),
)


def family_of(command_type: str) -> CliFamily | None:
    return next((f for f in FAMILIES if command_type.startswith(f.command_prefix)), None)


async def send(
    settings: Settings,
    family: CliFamily,
    envelope: dict[str, Any],
    wait: bool,
    echo: Echo,
    *,
    token: str | None = None,
) -> bool:
    from aiokafka import AIOKafkaProducer

    topics = family.topics(settings)
    answers = [topics.previews] if envelope.get("dry_run") else [topics.events, topics.rejections]
    watcher = await _outcome_watcher(settings, answers) if wait else None
    producer = AIOKafkaProducer(**settings.kafka_connection().client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.commands,
            json.dumps(envelope).encode(),
            key=envelope[family.id_field].encode(),
            headers=[("authorization", f"Bearer {token}".encode())] if token else None,
        )
    finally:
        await producer.stop()
    echo(f"sent {envelope['type']} {envelope['command_id']}", err=True)
    if watcher is None:
        return True
    try:
        return await _print_outcome(watcher, topics, envelope["command_id"], echo)
    finally:
        await watcher.stop()


async def _outcome_watcher(settings: Settings, answers: list[str]) -> Any:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**settings.kafka_connection().client_options())
    await consumer.start()
    await consumer.topics()  # loads cluster metadata, so partitions are known
    partitions = [
        TopicPartition(topic, p)
        for topic in answers
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # fix the start before the command is sent
    return consumer


async def _print_outcome(
    consumer: Any, topics: DocumentTopics, command_id: str, echo: Echo
) -> bool:
    deadline = asyncio.get_running_loop().time() + OUTCOME_WAIT_SECONDS
    accepted = False
    while asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                body = json.loads(record.value)
                if body.get("command_id") != command_id:
                    continue
                echo(json.dumps(body, indent=2))
                if record.topic == topics.previews:
                    return bool(body["would_accept"])
                if record.topic == topics.rejections:
                    return False
                accepted = True
        if accepted:
            return True
    echo(f"no outcome within {OUTCOME_WAIT_SECONDS}s: is the service running (make run)?", err=True)
    return False


async def tail(settings: Settings, from_beginning: bool, echo: Echo) -> None:
    from aiokafka import AIOKafkaConsumer

    watched = [
        topic
        for family in FAMILIES
        for topic in family.topics(settings).all()
        if topic != family.topics(settings).commands
    ]
    consumer = AIOKafkaConsumer(
        *watched,
        f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
        **settings.kafka_connection().client_options(),
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
            echo(f"{record.topic} [{key}] {text}")
    finally:
        await consumer.stop()


async def show(settings: Settings, tenant: str, document_id: str, echo: Echo) -> bool:
    """Print every document of the tenant with this id: a purchase order, an order, or both."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        found = [
            await _show_purchase_order(conn, tenant, document_id, echo),
            await _show_order(conn, settings, tenant, document_id, echo),
        ]
    finally:
        await conn.close()
    if not any(found):
        echo(f"order or purchase order {document_id!r} of tenant {tenant!r} not found", err=True)
    return any(found)


async def _show_purchase_order(conn: Any, tenant: str, document_id: str, echo: Echo) -> bool:
    row = await conn.fetchrow(
        "SELECT status, version, document::text AS document FROM purchase_orders"
        " WHERE tenant_id = $1 AND purchase_order_id = $2",
        tenant,
        document_id,
    )
    if row is None:
        await _echo_tombstone(conn, "purchase_order", tenant, document_id, echo)
        return False
    echo(f"purchase order {document_id}  status={row['status']}  version={row['version']}")
    echo(PurchaseOrderSnapshot.model_validate_json(row["document"]).model_dump_json(indent=2))
    await _echo_history(conn, "purchase_order", tenant, document_id, echo)
    return True


async def _show_order(
    conn: Any, settings: Settings, tenant: str, document_id: str, echo: Echo
) -> bool:
    """Decrypts the personal data: only an operator holding the master key can run this."""
    from service.adapters.order_store import PostgresOrders
    from service.domain import orders

    order = await PostgresOrders(conn, settings.load_master_key()).load(tenant, document_id)
    if not isinstance(order, orders.Order):
        await _echo_tombstone(conn, "order", tenant, document_id, echo)
        return False
    d = order.details
    echo(f"order {document_id}  status={order.status}  version={order.version}")
    echo(
        json.dumps(
            {
                "customer_id": d.customer_id,
                "warehouse_id": d.warehouse_id,
                "items": [
                    {
                        "sku": i.sku,
                        "quantity": i.quantity,
                        "unit_price": str(i.unit_price),
                        "currency": i.currency,
                    }
                    for i in d.items
                ],
                "total": str(order.total()),
                "voucher_code": d.voucher_code,
                "cancel_reason": order.cancel_reason,
                "shipping_address": vars(d.shipping_address),
                "billing_address": vars(d.billing_address),
            },
            indent=2,
        )
    )
    await _echo_history(conn, "order", tenant, document_id, echo)
    return True


async def _echo_tombstone(conn: Any, kind: str, tenant: str, document_id: str, echo: Echo) -> None:
    tombstone = await conn.fetchrow(
        f"SELECT last_version, deleted_at FROM {kind}_tombstones"
        f" WHERE tenant_id = $1 AND {kind}_id = $2",
        tenant,
        document_id,
    )
    if tombstone is not None:
        echo(
            f"{kind.replace('_', ' ')} {document_id!r} of tenant {tenant!r} was deleted at"
            f" {tombstone['deleted_at'].isoformat()} (last version {tombstone['last_version']});"
            " nothing else of it is kept",
            err=True,
        )


async def _echo_history(conn: Any, kind: str, tenant: str, document_id: str, echo: Echo) -> None:
    history = await conn.fetch(
        f"SELECT version, event_type, command_id, recorded_at, actor_type, actor_id,"
        f" actor_issuer FROM {kind}_history"
        f" WHERE tenant_id = $1 AND {kind}_id = $2 ORDER BY version",
        tenant,
        document_id,
    )
    echo("history:")
    for entry in history:
        echo(
            f"  v{entry['version']}  {entry['recorded_at'].isoformat()}  {entry['event_type']}"
            f"  command {entry['command_id']}{_by(entry)}"
        )


def _by(entry: Any) -> str:
    """Who acted on a history version: proven by a token's issuer, or only claimed."""
    if entry["actor_type"] is None:
        return ""
    who = f"  by {entry['actor_type']}:{entry['actor_id']}"
    issuer = entry["actor_issuer"]
    return f"{who} (verified, issuer {issuer})" if issuer else f"{who} (claimed)"
