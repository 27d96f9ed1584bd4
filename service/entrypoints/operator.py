"""What the CLI does against a running service: send a command, follow topics, show an order."""

from __future__ import annotations

import json
from typing import Any, Protocol

from contracts.headers import AUTHORIZATION, BEARER_SCHEME
from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS
from service.adapters import views
from service.app import registry
from service.app.family import Family
from service.app.wire_json import wire_json
from service.entrypoints.families import registered
from service.settings import Settings

OUTCOME_WAIT_SECONDS = 30
CLIENT_FAMILIES = frozenset({PURCHASE_ORDERS, ORDERS})
"""The families the typed command client (contract_tools.client) speaks for."""


class Echo(Protocol):
    def __call__(self, message: str, *, err: bool = False) -> None: ...


def family_of(settings: Settings, command_type: str) -> Family[Any] | None:
    return registry.family_of(registered(settings), command_type)


async def send(
    settings: Settings,
    family: Family[Any],
    envelope: dict[str, Any],
    wait: bool,
    echo: Echo,
    *,
    token: str | None = None,
) -> bool:
    """Send through the typed command client and print the outcome its reply tells: the events
    (by id, type and version), the errors, or the preview of a dry run. False when it was
    refused (or would be)."""
    from pydantic import ValidationError

    from contract_tools.client import Accepted, CommandClient, CommandTimeout, Refused
    from contracts.readers import Unrecognised

    try:
        command = family.commands.adapter.validate_python(envelope)
    except ValidationError as error:
        for problem in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"][1:]) or "command"
            echo(f"{where}: {problem['msg']}", err=True)
        return False
    options = settings.kafka_connection().client_options("cli")
    if family.name not in CLIENT_FAMILIES:
        return await _send_raw(family, command, options, echo, token)
    client = CommandClient(
        options.pop("bootstrap_servers"),
        client_id=options.pop("client_id"),
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
    if outcome.repeat if isinstance(outcome, Accepted | Refused) else False:
        echo("decided before: this is the outcome it was decided with then", err=True)
    if isinstance(outcome, Accepted):
        for event in outcome.events:
            echo(event.model_dump_json(indent=2))
        return True
    if isinstance(outcome, Refused):
        refused = {
            "outcome": outcome.outcome,
            "repeat": outcome.repeat,
            "errors": [error.model_dump(mode="json") for error in outcome.errors],
        }
        echo(json.dumps(refused, indent=2))
        return False
    preview = outcome.preview
    shown = preview.raw if isinstance(preview, Unrecognised) else preview.model_dump(mode="json")
    echo(json.dumps(shown, indent=2))
    return outcome.would_accept


async def _send_raw(
    family: Family[Any], command: Any, options: dict[str, Any], echo: Echo, token: str | None
) -> bool:
    """A family the typed client does not know (one a deployment added): the command is sent,
    and its outcome is followed with `order-service tail`."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**options, acks="all")
    await producer.start()
    try:
        headers = (
            [(AUTHORIZATION, f"{BEARER_SCHEME} {token}".encode())] if token is not None else []
        )
        await producer.send_and_wait(
            family.topics.commands,
            command.model_dump_json(exclude_unset=True).encode(),
            key=str(getattr(command, family.commands.id_field_for(command.type))).encode(),
            headers=headers,
        )
    finally:
        await producer.stop()
    echo(f"sent {command.type} {command.command_id}; follow its outcome with 'tail'", err=True)
    return True


async def tail(settings: Settings, from_beginning: bool, echo: Echo) -> None:
    from aiokafka import AIOKafkaConsumer

    watched = [
        topic
        for family in registered(settings)
        for topic in family.topics.all()
        if topic != family.topics.commands
    ]
    consumer = AIOKafkaConsumer(
        *watched,
        f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
        **settings.kafka_connection().client_options("cli"),
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            if record.value is None:
                text = "(tombstone: deleted or erased)"  # only state topics carry these
            else:
                try:
                    text = json.dumps(json.loads(record.value), indent=None)
                except (ValueError, TypeError):
                    text = repr(record.value[:200])
            key = record.key.decode(errors="replace") if record.key else ""
            echo(f"{record.topic} [{key}] {text}")
    finally:
        await consumer.stop()


async def show(settings: Settings, tenant: str, document_id: str, echo: Echo) -> bool:
    """Print every document of the tenant with this id, of whichever family."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        found = [
            await (
                _show_document(conn, family, tenant, document_id, echo)
                if family.codec is not None
                else _show_order(conn, settings, tenant, document_id, echo)
            )
            for family in registered(settings)
            # Kept as JSON, or the one family with tables of its own.
            if family.codec is not None or family.name == ORDERS
        ]
    finally:
        await conn.close()
    if not any(found):
        looked = ", ".join(family.name for family in registered(settings))
        echo(f"{document_id!r} of tenant {tenant!r} not found among {looked}", err=True)
    return any(found)


async def _show_document(
    conn: Any, family: Family[Any], tenant: str, document_id: str, echo: Echo
) -> bool:
    kind = family.name
    stored = await views.document(conn, kind, tenant, document_id)
    if stored is None:
        await _echo_tombstone(conn, kind, tenant, document_id, echo)
        return False
    echo(f"{_singular(kind)} {document_id}  status={stored.status}  version={stored.version}")
    # Read back through the family's codec and shown as its snapshot model lays it out (the
    # database keeps JSON keys in an order of its own).
    assert family.codec is not None
    state = family.codec.load(tenant, document_id, stored.version, stored.document)
    echo(wire_json(family.rules.snapshot(state), indent=True).decode())
    await _echo_history(conn, kind, tenant, document_id, echo)
    return True


async def _show_order(
    conn: Any, settings: Settings, tenant: str, document_id: str, echo: Echo
) -> bool:
    """Decrypts the personal data: only an operator holding the master key can run this."""
    from service.adapters.order_store import PostgresOrders
    from service.domain import orders

    key = (tenant, document_id)
    order = (await PostgresOrders(conn, settings.load_master_key()).load_many([key])).get(key)
    if not isinstance(order, orders.Order):
        await _echo_tombstone(conn, ORDERS, tenant, document_id, echo)
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
    await _echo_history(conn, ORDERS, tenant, document_id, echo)
    return True


async def _echo_tombstone(conn: Any, kind: str, tenant: str, document_id: str, echo: Echo) -> None:
    tombstone = await views.tombstone(conn, kind, tenant, document_id)
    if tombstone is not None:
        echo(
            f"{_singular(kind)} {document_id!r} of tenant {tenant!r} was deleted at"
            f" {tombstone.deleted_at.isoformat()} (last version {tombstone.last_version});"
            " nothing else of it is kept",
            err=True,
        )


async def _echo_history(conn: Any, kind: str, tenant: str, document_id: str, echo: Echo) -> None:
    history = await views.history(conn, kind, tenant, document_id)
    echo("history:")
    for entry in history:
        echo(
            f"  v{entry.version}  {entry.recorded_at.isoformat()}  {entry.event_type}"
            f"  command {entry.command_id}{_by(entry)}"
        )


def _singular(kind: str) -> str:
    """'purchase-orders' -> 'purchase order', for messages."""
    return kind.removesuffix("s").replace("-", " ")


def _by(entry: views.HistoryEntry) -> str:
    """Who acted on a history version: proven by a token's issuer, or only claimed."""
    if entry.actor_type is None:
        return ""
    who = f"  by {entry.actor_type}:{entry.actor_id}"
    issuer = entry.actor_issuer
    return f"{who} (verified, issuer {issuer})" if issuer else f"{who} (claimed)"
