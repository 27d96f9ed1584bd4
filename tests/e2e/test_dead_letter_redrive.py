"""Dead letters as an operator handles them after a bad deploy: listed without personal data,
opened on request, replayed once the cause is fixed (and decided once), purged for good."""

from __future__ import annotations

import asyncpg

from service.settings import Settings
from tests.support import (
    WireProbe,
    change_status,
    create,
    create_order,
    order_service,
    running_service,
)

BUG = """
CREATE FUNCTION simulated_defect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.document_id = 'PO-BUG' THEN
        RAISE EXCEPTION 'simulated defect';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER simulated_defect BEFORE INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION simulated_defect();
"""


async def test_a_dead_letter_is_listed_replayed_after_the_fix_decided_once_and_purged(
    settings: Settings, probe: WireProbe, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    async with running_service(settings):
        await db.execute(BUG)
        parked = create("PO-BUG")
        answer = await probe.send_and_wait(parked)
        assert answer.body["errors"][0]["error_code"] == "processing_failed"
        invalid = create_order("O-BAD")
        invalid["payload"]["items"] = []  # refused at the edge: a sealed dead letter
        await order_probe.send_and_wait(invalid)

        listed = await order_service(settings, "dead-letters", "list")
        assert listed.code == 0, listed.stderr
        assert f"{settings.topic_prefix}purchase-orders.commands.dlq" in listed.stdout
        assert "unexpected failure: RaiseError: simulated defect" in listed.stdout
        assert f"{settings.topic_prefix}orders.commands.dlq" in listed.stdout
        assert "sealed" in listed.stdout
        assert "Lovelace" not in listed.stdout  # nothing personal unless asked for
        shown = await order_service(
            settings, "dead-letters", "list", "--family", "orders", "--show"
        )
        assert "Ada Lovelace" in shown.stdout
        assert invalid["command_id"] in shown.stdout

        nothing = await order_service(settings, "dead-letters", "replay")
        assert nothing.code != 0
        assert "--at, --range, --reason or --all" in nothing.stderr

        await db.execute("DROP TRIGGER simulated_defect ON documents")  # the fix
        replayed = await order_service(
            settings,
            "dead-letters",
            "replay",
            "--family",
            "purchase-orders",
            "--reason",
            "simulated defect",
        )
        assert replayed.code == 0, replayed.stderr
        assert "1 replayed" in replayed.stderr
        await probe.wait_for(
            lambda records: any(
                r.topic == probe.topics.events and r.body["command_id"] == parked["command_id"]
                for r in records
            )
        )
        again = await order_service(
            settings, "dead-letters", "replay", "--family", "purchase-orders", "--all"
        )
        assert "1 replayed" in again.stderr
        # Same key, so decided after the second replay: once it is answered, so is the replay.
        await probe.send_and_wait(change_status("PO-BUG", "open"))
        assert (
            await db.fetchval(
                "SELECT count(*) FROM purchase_order_history WHERE purchase_order_id = 'PO-BUG'"
            )
            == 2  # created once, then opened
        )
        created = [
            r
            for r in probe.on(probe.topics.events)
            if r.body["purchase_order_id"] == "PO-BUG" and r.body["type"].endswith("created")
        ]
        assert len(created) == 1
        relisted = await order_service(
            settings, "dead-letters", "list", "--family", "purchase-orders"
        )
        assert "replayed" in relisted.stdout

        purged = await order_service(
            settings, "dead-letters", "purge", "--family", "orders", "--all"
        )
        assert "1 purged, 1 sealing keys destroyed" in purged.stdout
        remaining = await order_service(settings, "dead-letters", "list", "--family", "orders")
        assert "0 dead letters" in remaining.stderr
        gone = await order_service(
            settings, "dead-letters", "list", "--family", "orders", "--all", "--show"
        )
        assert "gone: its key was destroyed" in gone.stdout
        assert "Lovelace" not in gone.stdout
