"""Each purchase-order rule through the real pipeline: Kafka in, Postgres, Kafka out."""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts.inventory import InventoryMovement
from contracts.purchase_orders import PURCHASE_ORDER_EVENT
from service.settings import Settings
from tests.support import (
    WireProbe,
    change_status,
    command,
    create,
    delete,
    details,
    invoice,
    products,
    receipt,
    running_service,
    update,
    update_shipping,
)


def create_with(purchase_order_id: str, **quantities: int) -> dict[str, Any]:
    payload = details(products=products(**quantities), warehouse_id="WH-9")
    return command("purchase_order.create", purchase_order_id, payload)


def moved(probe: WireProbe, purchase_order_id: str) -> list[tuple[str, str, int, str]]:
    """(sku, bucket, quantity, reason) of every movement an order caused, in publication order."""
    return [
        (m["sku"], m["bucket"], m["quantity"], m["reason"])
        for m in probe.movements()
        if m["source"]["id"] == purchase_order_id
    ]


async def test_a_draft_is_replaced_whole_and_nothing_moves_until_it_opens(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-U"))
        [updated] = await probe.events_of(
            update("PO-U", supplier_id="SUP-2", products=products(BOLT=40), note_to_supplier="x")
        )
        opened = await probe.events_of(change_status("PO-U", "open"))
        refused = await probe.errors_of(update("PO-U"))
        await probe.wait_for(lambda _: len(probe.movements()) >= 1)

    assert updated["type"] == "purchase_order.updated"
    assert updated["version"] == 2
    assert updated["data"]["supplier_id"] == "SUP-2"
    assert [line["sku"] for line in updated["data"]["products"]] == ["BOLT"]
    assert updated["data"]["tracking_number"] is None, "a full replacement clears what is absent"
    assert opened[0]["version"] == 3
    assert refused == [("not_editable", "type")]
    assert moved(probe, "PO-U") == [("BOLT", "incoming", 40, "purchase_order.status_changed")]


async def test_shipping_details_change_only_while_open_and_only_the_listed_fields(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-S"))
        in_draft = await probe.errors_of(update_shipping("PO-S", tracking_number="1Z"))
        await probe.send_and_wait(change_status("PO-S", "open"))
        [changed] = await probe.events_of(
            update_shipping("PO-S", tracking_number="1Z999", shipping_carrier="UPS")
        )
        forbidden = await probe.errors_of(
            update_shipping("PO-S", tracking_number="1Z000", supplier_id="SUP-X")
        )
        await probe.send_and_wait(
            change_status("PO-S", "cancelled", reason="supplier out of stock")
        )
        after_cancel = await probe.errors_of(update_shipping("PO-S", tracking_number="1Z"))

    assert in_draft == [("not_editable", "type")]
    event = PURCHASE_ORDER_EVENT.validate_python(changed)
    assert event.type == "purchase_order.shipping_details_updated"
    assert sorted(event.data.changed_fields) == ["shipping_carrier", "tracking_number"]
    assert event.data.shipping_details.tracking_number == "1Z999"
    assert event.data.shipping_details.payment_terms == "net_30", "untouched fields stay"
    assert forbidden == [("invalid_request", "payload.supplier_id")]
    assert after_cancel == [("not_editable", "type")]


async def test_receipts_move_the_status_and_the_stock_and_refuse_every_bad_line(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create_with("PO-R", A=10, B=5))
        await probe.send_and_wait(change_status("PO-R", "open"))
        first = await probe.events_of(receipt("PO-R", "R-1", A=4), count=2)
        bad = await probe.errors_of(receipt("PO-R", "R-2", A=7, C=1))
        duplicate = await probe.errors_of(receipt("PO-R", "R-1", B=1))
        last = await probe.events_of(receipt("PO-R", "R-3", A=6, B=5), count=2)
        after = await probe.errors_of(receipt("PO-R", "R-4", A=1))
        await probe.wait_for(lambda _: len(moved(probe, "PO-R")) >= 8)

    assert [(e["type"], e["version"]) for e in first] == [
        ("purchase_order.status_changed", 3),
        ("purchase_order.receipt_recorded", 4),
    ]
    assert (first[0]["data"]["from_status"], first[0]["data"]["to_status"]) == ("open", "receiving")
    assert first[1]["data"]["progress"] == [
        {"sku": "A", "ordered": 10, "received": 4},
        {"sku": "B", "ordered": 5, "received": 0},
    ]
    assert bad == [
        ("invalid_request", "payload.lines.0.quantity"),
        ("invalid_request", "payload.lines.1.sku"),
    ]
    assert duplicate == [("already_exists", "payload.receipt_id")]
    assert [(e["type"], e["version"]) for e in last] == [
        ("purchase_order.receipt_recorded", 5),
        ("purchase_order.status_changed", 6),
    ]
    assert last[1]["data"]["to_status"] == "received"
    assert after == [("invalid_status", "type"), ("invalid_request", "payload.lines.0.quantity")]
    assert sorted(moved(probe, "PO-R")) == sorted(
        [
            ("A", "incoming", 10, "purchase_order.status_changed"),
            ("B", "incoming", 5, "purchase_order.status_changed"),
            ("A", "incoming", -4, "purchase_order.receipt_recorded"),
            ("A", "on_hand", 4, "purchase_order.receipt_recorded"),
            ("A", "incoming", -6, "purchase_order.receipt_recorded"),
            ("A", "on_hand", 6, "purchase_order.receipt_recorded"),
            ("B", "incoming", -5, "purchase_order.receipt_recorded"),
            ("B", "on_hand", 5, "purchase_order.receipt_recorded"),
        ]
    )
    row = await db.fetchrow(
        "SELECT status, version FROM purchase_orders WHERE purchase_order_id = 'PO-R'"
    )
    assert dict(row) == {"status": "received", "version": 6}


async def test_invoices_link_once_each_and_not_on_drafts_or_cancelled_orders(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-I"))
        on_draft = await probe.errors_of(invoice("PO-I", "INV-1"))
        await probe.send_and_wait(change_status("PO-I", "open"))
        [linked] = await probe.events_of(invoice("PO-I", "INV-1", amount="999.0001"))
        twice = await probe.errors_of(invoice("PO-I", "INV-1"))
        await probe.send_and_wait(change_status("PO-I", "cancelled"))
        on_cancelled = await probe.errors_of(invoice("PO-I", "INV-2"))

    assert on_draft == [("invalid_status", "type")]
    event = PURCHASE_ORDER_EVENT.validate_python(linked)
    assert event.type == "purchase_order.invoice_linked"
    assert (event.data.invoice_id, str(event.data.amount)) == ("INV-1", "999.0001")
    assert twice == [("already_exists", "payload.invoice_id")]
    assert on_cancelled == [("invalid_status", "type")]


async def test_deletion_lists_every_blocker_in_one_rejection(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create_with("PO-B", A=10))
        await probe.send_and_wait(change_status("PO-B", "open"))
        await probe.send_and_wait(receipt("PO-B", "R-7", A=3))
        await probe.send_and_wait(invoice("PO-B", "INV-7"))
        refused = await probe.send_and_wait(delete("PO-B"))
        await probe.send_and_wait(change_status("PO-B", "cancelled"))
        still = await probe.errors_of(delete("PO-B"))

    messages = [(e["error_code"], e["message"]) for e in refused.body["errors"]]
    assert [code for code, _ in messages] == [
        "invalid_status",
        "has_dependencies",
        "has_dependencies",
    ]
    assert "'receiving'" in messages[0][1]
    assert "receipt 'R-7'" in messages[1][1]
    assert "invoice 'INV-7'" in messages[2][1]
    assert [e["error_type"] for e in refused.body["errors"]] == [
        "validation",
        "conflict",
        "conflict",
    ]
    assert still == [("has_dependencies", "purchase_order_id")] * 2, "cancelling is not enough"


async def test_a_deleted_order_leaves_only_a_tombstone(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create("PO-D"))
        await probe.send_and_wait(update("PO-D", note_to_supplier="rush"))
        stale = await probe.errors_of(delete("PO-D", expected_version=1))
        [deleted] = await probe.events_of(delete("PO-D", expected_version=2))
        later = await probe.send_and_wait(change_status("PO-D", "open"))
        again = await probe.errors_of(delete("PO-D"))
        reused = await probe.errors_of(create("PO-D"))
        await probe.send_and_wait(create("PO-C"))
        await probe.send_and_wait(change_status("PO-C", "cancelled"))
        [cancelled_then_deleted] = await probe.events_of(delete("PO-C"))

    assert stale == [("version_conflict", "expected_version")]
    assert deleted["type"] == "purchase_order.deleted"
    assert deleted["version"] == 3
    assert deleted["data"] == {}, "the deleted event carries no document data"
    [error] = later.body["errors"]
    assert error["error_code"] == "not_found"
    assert "was deleted" in error["message"]
    assert again == [("not_found", "purchase_order_id")]
    assert reused == [("already_exists", "purchase_order_id")]
    assert cancelled_then_deleted["version"] == 3
    assert moved(probe, "PO-D") == [], "a draft never moved stock"

    for table in ("purchase_orders", "purchase_order_history"):
        remaining = await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE purchase_order_id = ANY($1)", ["PO-D", "PO-C"]
        )
        assert remaining == 0, table
    tombstones = await db.fetch(
        "SELECT purchase_order_id, last_version FROM purchase_order_tombstones ORDER BY 1"
    )
    assert [tuple(t) for t in tombstones] == [("PO-C", 3), ("PO-D", 3)]


async def test_cancelling_or_closing_early_returns_the_outstanding_quantity(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create_with("PO-X", A=8))
        await probe.send_and_wait(change_status("PO-X", "open"))
        await probe.send_and_wait(change_status("PO-X", "cancelled", reason="duplicate"))
        await probe.send_and_wait(create_with("PO-Y", A=10, B=2))
        await probe.send_and_wait(change_status("PO-Y", "open"))
        await probe.send_and_wait(receipt("PO-Y", "R-1", A=7))
        await probe.send_and_wait(change_status("PO-Y", "received"))
        closed = await probe.events_of(change_status("PO-Y", "closed"))
        await probe.wait_for(lambda _: len(probe.movements()) >= 8)

    assert moved(probe, "PO-X") == [
        ("A", "incoming", 8, "purchase_order.status_changed"),
        ("A", "incoming", -8, "purchase_order.status_changed"),
    ]
    closing = [m for m in probe.movements() if m["source"]["event_id"] == closed[0]["event_id"]]
    assert sorted((m["sku"], m["bucket"], m["quantity"]) for m in closing) == [
        ("A", "incoming", -3),
        ("B", "incoming", -2),
    ]


async def test_movements_are_keyed_by_stock_item_and_point_at_their_event(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):
        await probe.send_and_wait(create_with("PO-M", A=3, B=4))
        [opened] = await probe.events_of(change_status("PO-M", "open"))
        await probe.wait_for(lambda _: len(probe.movements()) >= 2)

    records = probe.on(probe.movements_topic)
    assert sorted(r.key or "" for r in records) == ["tenant-a/WH-9/A", "tenant-a/WH-9/B"]
    for record in records:
        movement = InventoryMovement.model_validate_json(record.value)
        assert record.key == f"{movement.tenant_id}/{movement.warehouse_id}/{movement.sku}"
        assert movement.bucket == "incoming"
        assert movement.reason == "purchase_order.status_changed"
        assert movement.source.model_dump(mode="json") == {
            "type": "purchase_order",
            "id": "PO-M",
            "version": 2,
            "event_id": opened["event_id"],
        }
        assert movement.occurred_at.isoformat().replace("+00:00", "Z") == opened["occurred_at"]
    assert len({r.body["movement_id"] for r in records}) == 2
