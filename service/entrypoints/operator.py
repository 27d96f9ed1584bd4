"""What the CLI does against a running service: send a command, follow topics, show an order."""

from __future__ import annotations

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
    """Send through the typed command client and print the outcome: the events, the
    rejection, or the preview of a dry run. False when it was refused (or would be)."""
    from pydantic import ValidationError

    from contracts.client import Accepted, CommandClient, CommandTimeout, Refused
    from contracts.orders import ORDER_COMMAND
    from contracts.purchase_orders import PURCHASE_ORDER_COMMAND

    adapter: Any = (
        PURCHASE_ORDER_COMMAND if family.topic_family == PURCHASE_ORDERS else ORDER_COMMAND
    )
    try:
        command = adapter.validate_python(envelope)
    except ValidationError as error:
        for problem in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"][1:]) or "command"
            echo(f"{where}: {problem['msg']}", err=True)
        return False
    options = settings.kafka_connection().client_options()
    client = CommandClient(
        options.pop("bootstrap_servers"),
        tenant_id=command.tenant_id,
        topic_prefix=settings.topic_prefix,
        # The CLI made sure the token is bound to this very command.
        token_for=(lambda _: token) if token is not None else None,
        timeout_seconds=OUTCOME_WAIT_SECONDS,
        kafka_options=options,
    )
    async with client:
        if not wait:
            await client.send_no_wait(command)
            echo(f"sent {command.type} {command.command_id}", err=True)
            return True
        echo(f"sending {command.type} {command.command_id}", err=True)
        try:
            outcome = await client.send(command)
        except CommandTimeout:
            echo(
                f"no outcome within {OUTCOME_WAIT_SECONDS}s: is the service running (make run)?",
                err=True,
            )
            return False
    if isinstance(outcome, Accepted):
        for event in outcome.events:
            echo(event.model_dump_json(indent=2))
        return True
    if isinstance(outcome, Refused):
        echo(outcome.rejection.model_dump_json(indent=2))
        return False
    echo(outcome.preview.model_dump_json(indent=2))
    return outcome.would_accept


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
