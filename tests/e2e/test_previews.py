"""Dry-run previews on the real pipeline: decided exactly as the command would be, against the
current state, answered on the .previews topic, and nothing written."""

from __future__ import annotations

import asyncpg

from service.settings import Settings
from tests.support import (
    WireProbe,
    change_status,
    create,
    create_order,
    delete,
    invoice,
    order_command,
    order_service,
    order_status,
    receipt,
    running_service,
)


async def _state(
    db: asyncpg.Connection, table: str, key: str, document_id: str
) -> tuple[object, ...]:
    row = await db.fetchrow(f"SELECT status, version FROM {table} WHERE {key} = $1", document_id)
    history = await db.fetchval(
        f"SELECT count(*) FROM {table.rstrip('s')}_history WHERE {key} = $1", document_id
    )
    return (*row, history)


async def test_a_delete_preview_lists_every_blocker_and_changes_nothing(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        for body in (
            create("PO-1"),
            change_status("PO-1", "open"),
            change_status("PO-1", "receiving"),
            receipt("PO-1", "RCV-1", **{"WIDGET-001": 40}),
            invoice("PO-1", "INV-1"),
        ):
            await probe.send_and_wait(body)
        before = await _state(db, "purchase_orders", "purchase_order_id", "PO-1")
        shown_before = await order_service(settings, "show", "PO-1", "--tenant", "tenant-a")
        deleting = delete("PO-1")
        preview = await probe.preview(deleting)
        assert await _state(db, "purchase_orders", "purchase_order_id", "PO-1") == before
        shown_after = await order_service(settings, "show", "PO-1", "--tenant", "tenant-a")
        assert shown_after.stdout == shown_before.stdout
        assert "version=5" in shown_after.stdout
        assert probe.outcomes(deleting["command_id"]) == []  # consumers of events saw nothing
        # The same command for real: refused with exactly the errors the preview listed.
        real = await probe.send_and_wait(deleting)
    assert preview["would_accept"] is False
    assert preview["purchase_order_id"] == "PO-1"
    assert preview["events"] == []
    assert preview["movements"] == []
    codes = [error["error_code"] for error in preview["errors"]]
    assert codes.count("has_dependencies") == 2  # the receipt and the invoice, both at once
    assert preview["errors"] == real.body["errors"]


async def test_a_cancel_preview_lists_the_reservations_it_releases(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-1"))
        await order_probe.send_and_wait(order_status("O-1", "ready"))
        before = await _state(db, "orders", "order_id", "O-1")
        cancelling = order_status("O-1", "cancelled", "customer")
        preview = await order_probe.preview(cancelling)
        again = await order_probe.preview(cancelling)  # not recorded, so it can be asked again
        assert await _state(db, "orders", "order_id", "O-1") == before
        assert [m for m in order_probe.movements() if m["source"]["version"] == 3] == []
        real = await order_probe.send_and_wait(cancelling)  # and then sent for real
    assert preview["would_accept"] is True
    assert [(e["type"], e["version"]) for e in preview["events"]] == [("order.status_changed", 3)]
    released = sorted((m["sku"], m["bucket"], m["quantity"]) for m in preview["movements"])
    assert released == [("MUG-RED", "reserved", -2), ("TEA-1KG", "reserved", -1)]
    assert again["events"] == preview["events"]
    assert real.body["type"] == "order.status_changed"
    assert real.body["version"] == 3


async def test_a_redact_preview_says_whether_it_would_run_now_or_be_scheduled(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await order_probe.send_and_wait(create_order("O-1"))
        await order_probe.send_and_wait(order_status("O-1", "ready"))
        await order_probe.send_and_wait(create_order("O-2"))
        await order_probe.send_and_wait(order_status("O-2", "cancelled", "customer"))
        before = [await _state(db, "orders", "order_id", o) for o in ("O-1", "O-2")]
        redact = {"groups": ["contact"]}
        while_fulfilled = await order_probe.preview(order_command("order.redact", "O-1", redact))
        when_closed = await order_probe.preview(order_command("order.redact", "O-2", redact))
        assert [await _state(db, "orders", "order_id", o) for o in ("O-1", "O-2")] == before
        assert (
            await db.fetchval("SELECT count(*) FROM data_keys WHERE field_group = 'contact'") == 2
        )
    [scheduled] = while_fulfilled["events"]
    assert (scheduled["type"], scheduled["data"]) == (
        "order.redaction_scheduled",
        {"groups": ["contact"]},
    )
    [erased] = when_closed["events"]
    assert (erased["type"], erased["data"]) == ("order.redacted", {"groups": ["contact"]})
