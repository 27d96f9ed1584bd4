"""The typed command client against the real service, through its replies: every command of
both families, a thousand requests at once through one client, and a safe retry after a
timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contract_tools.client import Accepted, CommandClient, CommandTimeout, Previewed, Refused
from contract_tools.conformance import STRICT, assert_conforms
from contracts import orders as o
from contracts import purchase_orders as po
from contracts.previews import PreviewMetadata
from service.settings import Settings
from tests.support import WireProbe, details, order_details, running_service

TENANT = "tenant-a"


@pytest.fixture
async def client(
    settings: Settings, probe: WireProbe, order_probe: WireProbe
) -> AsyncIterator[CommandClient]:
    # The probes create the topics, as a started service would.
    async with CommandClient(
        settings.kafka_bootstrap_servers,
        tenant_id=TENANT,
        topic_prefix=settings.topic_prefix,
        timeout_seconds=60,
    ) as started:
        yield started


def types(outcome: object) -> list[str]:
    assert isinstance(outcome, Accepted), outcome
    return [event.type for event in outcome.events]


async def test_every_command_of_both_families_gets_a_typed_outcome(
    settings: Settings, client: CommandClient, probe: WireProbe, order_probe: WireProbe
) -> None:
    pos, orders = client.purchase_orders, client.orders
    async with running_service(settings):
        created = await pos.create("PO-1", po.PurchaseOrderDetails.model_validate(details()))
        assert isinstance(created, Accepted)
        [event] = created.events
        assert (event.type, event.version, event.document_id) == (
            "purchase_order.created",
            1,
            "PO-1",
        )
        assert created.version == 1
        assert types(
            await pos.update(
                "PO-1", po.PurchaseOrderDetails.model_validate(details(supplier_id="SUP-2"))
            )
        ) == ["purchase_order.updated"]
        opened = await pos.change_status(
            "PO-1", po.StatusChange(status=po.PurchaseOrderStatus.OPEN)
        )
        assert types(opened) == ["purchase_order.status_changed"]
        shipping = po.ShippingDetails(tracking_number="TRK-1")
        assert types(await pos.update_shipping_details("PO-1", shipping)) == [
            "purchase_order.shipping_details_updated"
        ]
        receipt = po.Receipt.model_validate(
            {"receipt_id": "RCV-1", "lines": [{"sku": "WIDGET-001", "quantity": 100}]}
        )
        assert "purchase_order.receipt_recorded" in types(await pos.record_receipt("PO-1", receipt))
        invoice = po.Invoice.model_validate(
            {"invoice_id": "INV-1", "amount": "999.00", "currency_code": "USD"}
        )
        assert types(await pos.link_invoice("PO-1", invoice)) == ["purchase_order.invoice_linked"]
        preview = await pos.delete("PO-1", dry_run=True)
        assert isinstance(preview, Previewed)
        assert preview.would_accept is False
        refused = await pos.delete("PO-1")
        assert isinstance(refused, Refused)
        assert {e.error_code for e in refused.errors} >= {"has_dependencies"}
        assert isinstance(preview.preview, PreviewMetadata)
        assert [e.error_code for e in refused.errors] == [
            e.error_code for e in preview.preview.errors
        ]

        order = o.OrderDetails.model_validate(order_details())
        assert types(await orders.create("O-1", order)) == ["order.created"]
        moved = o.OrderChanges.model_validate(
            {"shipping_address": order_details()["shipping_address"] | {"city": "Leeds"}}
        )
        assert types(await orders.update("O-1", moved)) == ["order.updated"]
        ready = o.OrderStatusChange(status=o.OrderStatus.READY)
        assert types(await orders.change_status("O-1", ready)) == ["order.status_changed"]
        assert types(await orders.redact("O-1")) == ["order.redaction_scheduled"]
        assert types(await orders.create("O-2", order)) == ["order.created"]
        assert types(await orders.delete("O-2")) == ["order.deleted"]
        cancelled = o.OrderStatusChange(
            status=o.OrderStatus.CANCELLED, reason=o.CancelReason.CUSTOMER
        )
        assert types(await orders.change_status("O-1", cancelled)) == [
            "order.status_changed",
            "order.redacted",
        ]
        erased = await orders.redact_customer("CUST-1")
        assert types(erased)[-1] == "customer.redacted"
        missing = await orders.delete("O-404")
        assert isinstance(missing, Refused)
        assert [e.error_code for e in missing.errors] == ["not_found"]

    # Everything published conforms to the shipped schemas, as the contract kit checks it.
    published = [r for r in (*probe.records, *order_probe.records) if not r.topic.endswith(".dlq")]
    assert len(published) > 30
    for record in published:
        assert_conforms(record.value, topic=record.topic, mode=STRICT)


async def test_a_thousand_concurrent_requests_through_one_client_each_get_their_answer(
    settings: Settings, client: CommandClient
) -> None:
    payload = po.PurchaseOrderDetails.model_validate(details())
    async with running_service(settings):
        outcomes = await asyncio.gather(
            *(client.purchase_orders.create(f"PO-{n}", payload) for n in range(1000))
        )
    assert all(isinstance(outcome, Accepted) for outcome in outcomes)
    firsts = [outcome.events[0] for outcome in outcomes if isinstance(outcome, Accepted)]
    assert [e.document_id for e in firsts] == [f"PO-{n}" for n in range(1000)]
    assert {e.type for e in firsts} == {"purchase_order.created"}
    assert len({outcome.command_id for outcome in outcomes}) == 1000


async def test_a_timed_out_request_sent_again_has_one_effect(
    settings: Settings, client: CommandClient, db: asyncpg.Connection
) -> None:
    payload = po.PurchaseOrderDetails.model_validate(details())
    with pytest.raises(CommandTimeout) as timed_out:
        await client.purchase_orders.create("PO-1", payload, timeout_seconds=1)  # nobody serves
    async with running_service(settings):
        outcome = await client.send(timed_out.value.command)
        again = await client.send(timed_out.value.command)
    assert isinstance(outcome, Accepted)
    assert isinstance(again, Accepted)
    assert outcome.command_id == timed_out.value.command.command_id
    # The first send was decided once the service started; the others are its repeats.
    assert again.repeat
    assert again.events == outcome.events
    assert await db.fetchval("SELECT count(*) FROM purchase_order_history") == 1
