"""Customer orders through the real pipeline: Kafka in, Postgres, Kafka out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from contracts.orders import ORDER_EVENT, OrderRejection, OrderSnapshot
from contracts.topics import ORDERS
from service.adapters.order_store import PostgresOrders
from service.domain import orders
from service.settings import Settings
from tests.support import (
    Record,
    WireProbe,
    address,
    assert_cloudevents,
    create_order,
    delete_order,
    order_details,
    order_status,
    redact_customer,
    running_service,
    update_order,
)

PERSONAL = ("Ada Lovelace", "Analytical", "N1 9GU", "ada@example.org", "7946")


@pytest.fixture(autouse=True)
def events_and_movements_are_cloudevents(order_probe: WireProbe) -> Iterator[None]:
    """After each test: every event and movement it read carries valid CloudEvents headers."""
    yield
    assert_cloudevents(order_probe, ORDERS)


async def test_unit_prices_are_read_with_their_places_as_written(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    """A price whose trailing zeros or exponent take it past four places is refused at the edge:
    stored as sent, it would break every read of the order_items view."""
    hostile = ["12.500000000", "0E-16384", "0E-7"]
    items = [
        {"sku": f"SKU-{i}", "quantity": 1, "unit_price": price, "currency": "EUR"}
        for i, price in enumerate(hostile)
    ]
    async with running_service(settings):
        errors = await order_probe.errors_of(create_order("O-15", details={"items": items}))
        accepted = await order_probe.send_and_wait(
            create_order(
                "O-16",
                details={
                    "items": [
                        {"sku": "SKU-A", "quantity": 2, "unit_price": "1E+2", "currency": "EUR"},
                        {"sku": "SKU-B", "quantity": 1, "unit_price": "7.5000", "currency": "EUR"},
                    ]
                },
            )
        )
    assert errors == [
        ("invalid_request", f"payload.items.{i}.unit_price") for i in range(len(hostile))
    ]
    snapshot = ORDER_EVENT.validate_json(accepted.value).data
    assert isinstance(snapshot, OrderSnapshot)
    assert [str(item.unit_price) for item in snapshot.items] == ["1E+2", "7.5000"]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE order_id = 'O-15'") == 0
    viewed = await db.fetch(
        "SELECT order_id, sku, unit_price::text FROM order_items ORDER BY order_id, line_no"
    )
    assert [tuple(row) for row in viewed] == [("O-16", "SKU-A", "100"), ("O-16", "SKU-B", "7.5000")]


def moved(probe: WireProbe, order_id: str) -> list[tuple[str, str, int]]:
    return sorted(
        (m["sku"], m["bucket"], m["quantity"])
        for m in probe.movements()
        if (m["source"]["type"], m["source"]["id"]) == ("order", order_id)
    )


async def test_an_order_is_created_and_its_event_carries_no_personal_data(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        created = await order_probe.send_and_wait(
            create_order("O-1", details={"voucher_code": "WELCOME10"})
        )

    event = ORDER_EVENT.validate_json(created.value)
    assert (created.topic, created.key) == (order_probe.topics.events, "O-1")
    assert event.type == "order.created"
    assert (event.version, event.data.status, str(event.data.total)) == (1, "placed", "55.00")
    assert [i.sku for i in event.data.items] == ["MUG-RED", "TEA-1KG"]
    for value in PERSONAL:
        assert value.encode() not in created.value, value

    row = await db.fetchrow(
        "SELECT customer_id, status, version, voucher_code FROM orders WHERE order_id = 'O-1'"
    )
    assert dict(row) == {
        "customer_id": "CUST-1",
        "status": "placed",
        "version": 1,
        "voucher_code": "WELCOME10",
    }
    items = await db.fetch(
        "SELECT sku, quantity, unit_price::text FROM order_items"
        " WHERE order_id = 'O-1' ORDER BY line_no"
    )
    assert [tuple(i) for i in items] == [("MUG-RED", 2, "12.50"), ("TEA-1KG", 1, "30.00")]
    groups = await db.fetch("SELECT field_group FROM data_keys ORDER BY 1")
    assert [g["field_group"] for g in groups] == ["billing_address", "contact", "shipping_address"]
    assert await db.fetchval("SELECT count(*) FROM personal_data WHERE order_id = 'O-1'") == 3
    history = await db.fetchval("SELECT document::text FROM order_history WHERE order_id = 'O-1'")
    assert "Ada" not in history


async def test_editing_follows_the_status(settings: Settings, order_probe: WireProbe) -> None:
    office = address(lines=["1 Engine Street"], postal_code="EC1 1AA")
    new_items = [{"sku": "MUG-BLUE", "quantity": 1, "unit_price": "13.00", "currency": "EUR"}]
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-2"))
        [placed] = await order_probe.events_of(
            update_order("O-2", {"items": new_items, "billing_address": office})
        )
        await order_probe.send_and_wait(order_status("O-2", "ready"))
        [ready] = await order_probe.events_of(update_order("O-2", {"shipping_address": office}))
        too_late = await order_probe.errors_of(
            update_order("O-2", {"items": new_items, "shipping_address": office})
        )
        await order_probe.send_and_wait(order_status("O-2", "fulfilled"))
        fulfilled = await order_probe.errors_of(update_order("O-2", {"shipping_address": office}))

    assert placed["type"] == "order.updated"
    assert placed["data"]["changed"] == ["items", "billing_address"]
    assert [i["sku"] for i in placed["data"]["order"]["items"]] == ["MUG-BLUE"]
    assert ready["data"]["changed"] == ["shipping_address"]
    assert ready["version"] == 4
    assert too_late == [("not_editable", "payload.items")]
    assert fulfilled == [("not_editable", "type")]


async def test_stock_is_reserved_when_ready_released_on_cancel_and_shipped_on_send(
    settings: Settings, order_probe: WireProbe
) -> None:
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-3"))
        await order_probe.send_and_wait(order_status("O-3", "ready"))
        [cancelled] = await order_probe.events_of(order_status("O-3", "cancelled", reason="fraud"))
        await order_probe.send_and_wait(create_order("O-4"))
        skipped = await order_probe.errors_of(order_status("O-4", "sent"))
        for status in ("ready", "fulfilled", "sent", "delivered"):
            await order_probe.send_and_wait(order_status("O-4", status))
        await order_probe.send_and_wait(create_order("O-5"))
        await order_probe.send_and_wait(order_status("O-5", "cancelled", reason="customer"))
        await order_probe.wait_for(lambda _: len(order_probe.movements()) >= 10)

    assert cancelled["data"] == {
        "from_status": "ready",
        "to_status": "cancelled",
        "reason": "fraud",
    }
    assert skipped == [("invalid_status", "payload.status")]
    assert moved(order_probe, "O-3") == [
        ("MUG-RED", "reserved", -2),
        ("MUG-RED", "reserved", 2),
        ("TEA-1KG", "reserved", -1),
        ("TEA-1KG", "reserved", 1),
    ]
    assert moved(order_probe, "O-4") == [
        ("MUG-RED", "on_hand", -2),
        ("MUG-RED", "reserved", -2),
        ("MUG-RED", "reserved", 2),
        ("TEA-1KG", "on_hand", -1),
        ("TEA-1KG", "reserved", -1),
        ("TEA-1KG", "reserved", 1),
    ]
    assert moved(order_probe, "O-5") == [], "a placed order never reserved anything"
    keys = {r.key for r in order_probe.on(order_probe.movements_topic)}
    assert keys == {"tenant-a/WH-1/MUG-RED", "tenant-a/WH-1/TEA-1KG"}


async def test_deletion_cascades_shreds_personal_data_frees_the_voucher_and_leaves_a_tombstone(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    shared_billing = address("Grace Hopper", lines=["1 Compiler Road"])
    async with running_service(settings):
        await order_probe.send_and_wait(
            create_order(
                "O-6", details={"voucher_code": "SPRING", "billing_address": shared_billing}
            )
        )
        in_use = await order_probe.errors_of(
            create_order(
                "O-7", details={"voucher_code": "SPRING", "billing_address": shared_billing}
            )
        )
        await order_probe.send_and_wait(
            create_order("O-7", details={"billing_address": shared_billing})
        )
        [deleted] = await order_probe.events_of(delete_order("O-6"))
        reused = await order_probe.events_of(
            create_order("O-8", details={"voucher_code": "SPRING"})
        )
        again = await order_probe.send_and_wait(delete_order("O-6"))
        await order_probe.send_and_wait(order_status("O-7", "ready"))
        late = await order_probe.send_and_wait(delete_order("O-7"))

    assert in_use == [("voucher_in_use", "payload.voucher_code")]
    assert deleted["type"] == "order.deleted"
    assert deleted["data"] == {}
    assert reused[0]["data"]["voucher_code"] == "SPRING", "deletion freed the voucher"
    [not_found] = OrderRejection.model_validate_json(again.value).errors
    assert (not_found.error_code, "was deleted" in not_found.message) == ("not_found", True)
    [fulfilled] = OrderRejection.model_validate_json(late.value).errors
    assert (fulfilled.error_code, fulfilled.error_type) == ("already_fulfilled", "conflict")
    assert "'ready'" in fulfilled.message
    assert "cancel it instead" in fulfilled.message

    tables = ("orders", "order_items", "order_history", "order_vouchers", "data_keys")
    for table in (*tables, "personal_data"):
        left = await db.fetchval(f"SELECT count(*) FROM {table} WHERE order_id = 'O-6'")
        assert left == 0, table
    tombstone = await db.fetchval(
        "SELECT last_version FROM order_tombstones WHERE order_id = 'O-6'"
    )
    assert tombstone == 2
    stored = PostgresOrders(db, settings.load_master_key())
    other = (await stored.load_many([("tenant-a", "O-7")])).get(("tenant-a", "O-7"))
    assert isinstance(other, orders.Order)
    assert other.details.billing_address.name == "Grace Hopper", "each order keeps its own copy"


async def test_a_cancelled_order_frees_its_voucher(
    settings: Settings, order_probe: WireProbe
) -> None:
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-9", details={"voucher_code": "VIP"}))
        stale = await order_probe.send_and_wait(
            order_status("O-9", "cancelled", reason="customer", expected_version=4)
        )
        await order_probe.send_and_wait(
            order_status("O-9", "cancelled", reason="customer", expected_version=1)
        )
        reused = await order_probe.send_and_wait(
            create_order("O-10", details={"voucher_code": "VIP"})
        )
        other_tenant = await order_probe.send_and_wait(
            create_order("O-11", details={"voucher_code": "VIP"}, tenant_id="tenant-b")
        )
    [conflict] = OrderRejection.model_validate_json(stale.value).errors
    assert conflict.error_code == "version_conflict"
    assert "current version is 1" in conflict.message
    assert reused.topic == order_probe.topics.events
    assert other_tenant.topic == order_probe.topics.events, "vouchers are per tenant"


async def test_other_customers_and_tenants_see_nothing(
    settings: Settings, order_probe: WireProbe
) -> None:
    mine = ("customer", "CUST-1")
    stranger = ("customer", "CUST-2")
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-12", actor=mine))
        foreign = await order_probe.send_and_wait(delete_order("O-12", actor=stranger))
        missing = await order_probe.send_and_wait(delete_order("O-404", actor=stranger))
        tenant = await order_probe.send_and_wait(
            order_status("O-12", "ready", tenant_id="tenant-b")
        )
        for_someone_else = await order_probe.errors_of(
            create_order("O-13", actor=stranger, details=order_details())
        )
        by_owner = await order_probe.send_and_wait(order_status("O-12", "cancelled", actor=mine))

    def answer(record: Record) -> list[tuple[str, str, str | None]]:
        body = OrderRejection.model_validate_json(record.value)
        return [(e.error_code, e.message.replace("O-404", "O-12"), e.field) for e in body.errors]

    assert (
        answer(foreign) == answer(missing) == [("not_found", "Order 'O-12' not found", "order_id")]
    )
    assert [e[0] for e in answer(tenant)] == ["not_found"]
    assert for_someone_else == [("invalid_request", "payload.customer_id")]
    assert by_owner.topic == order_probe.topics.events


async def test_invalid_order_commands_name_the_field(
    settings: Settings, order_probe: WireProbe
) -> None:
    bad_address = address(country="XX", email="not-an-email")
    bad_items = [{"sku": "A", "quantity": 0, "unit_price": "-1", "currency": "EUR"}]
    async with running_service(settings):
        errors = await order_probe.errors_of(
            create_order("O-14", details={"shipping_address": bad_address, "items": bad_items})
        )
        reason = await order_probe.errors_of(order_status("O-14", "cancelled", reason="bored"))
    assert sorted(field or "" for _, field in errors) == [
        "payload.items.0.quantity",
        "payload.items.0.unit_price",
        "payload.shipping_address.country",
        "payload.shipping_address.email",
    ]
    assert reason == [("invalid_request", "payload.reason")]


async def test_a_customer_is_erased_with_one_receipt_and_no_new_data_is_taken_for_them(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    erase = redact_customer("CUST-1")
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-20"))
        for status in ("ready", "fulfilled", "sent"):
            await order_probe.send_and_wait(order_status("O-20", status))
        await order_probe.send_and_wait(create_order("O-21"))
        await order_probe.send_and_wait(create_order("O-22", details={"customer_id": "CUST-2"}))
        await order_probe.send(erase, key="CUST-1")
        await order_probe.wait_for(lambda _: len(order_probe.outcomes(erase["command_id"])) >= 3)
        await order_probe.send(erase, key="CUST-1")  # a re-send after a crash: no second effect
        refused = await order_probe.errors_of(create_order("O-23"))
        again = {**erase, "command_id": str(uuid.uuid4())}
        await order_probe.send(again, key="CUST-1")
        await order_probe.wait_for(lambda _: bool(order_probe.outcomes(again["command_id"])))
        cancelled = await order_probe.events_of(order_status("O-21", "cancelled"), count=2)

    # Different keys, so different partitions: compare without order.
    outcomes = [r.body for r in order_probe.outcomes(erase["command_id"])]
    assert sorted((o["type"], o.get("order_id") or o.get("customer_id")) for o in outcomes) == [
        ("customer.redacted", "CUST-1"),
        ("order.redacted", "O-20"),
        ("order.redaction_scheduled", "O-21"),
    ]
    [receipt] = [o for o in outcomes if o["type"] == "customer.redacted"]
    assert receipt["version"] == 1
    assert {k: v for k, v in receipt["data"].items() if k != "completed_at"} == {
        "customer_id": "CUST-1",
        "orders_affected": ["O-20"],
        "orders_scheduled": ["O-21"],
        "groups_erased": ["billing_address", "contact", "shipping_address"],
        "keys_destroyed": 3,
    }
    assert refused == [("subject_erased", "payload.customer_id")]
    [repeat] = [r.body for r in order_probe.outcomes(again["command_id"])]
    assert (repeat["type"], repeat["version"]) == ("customer.redacted", 2)
    assert (repeat["data"]["orders_affected"], repeat["data"]["keys_destroyed"]) == ([], 0)
    assert [e["type"] for e in cancelled] == ["order.status_changed", "order.redacted"]

    keys = await db.fetch("SELECT DISTINCT order_id FROM data_keys ORDER BY 1")
    assert [k["order_id"] for k in keys] == ["O-22"], "only the other customer's keys are left"
