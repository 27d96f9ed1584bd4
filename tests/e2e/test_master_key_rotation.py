"""The master key rotates while the service runs: commands keep flowing (address updates among
them, which open and seal personal data), the running service picks up the new key without a
restart, every wrapped key (data keys, dead-letter keys, the signing key) ends up wrapped by the
new one, nothing is parked, and after the old key is removed everything still opens."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import asyncpg

from service.adapters.crypto import MasterKey, new_key
from service.settings import Settings
from tests.e2e.test_key_service import _ready
from tests.support import (
    ServiceProcess,
    WireProbe,
    address,
    create_order,
    eventually,
    order_service,
    update_order,
)

ORDERS = [f"O-{n}" for n in range(12)]


def write_keyring(path: Path, *keys: MasterKey) -> None:
    """Replaced in one rename, as a deployment tool would, so no reader sees half a file."""
    staged = path.with_suffix(".new")
    staged.write_text("".join(base64.b64encode(k.key).decode() + "\n" for k in keys))
    os.replace(staged, path)


async def keep_updating(probe: WireProbe, sent: list[str], stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        # Updates open and seal under existing data keys; creates make new ones, wrapped by
        # whichever master key the service holds as current at that moment.
        body = (
            create_order(f"NEW-{n}")
            if n % 5 == 0
            else update_order(ORDERS[n % len(ORDERS)], {"shipping_address": address(f"N{n}")})
        )
        await probe.send(body)
        sent.append(body["command_id"])
        n += 1
        await asyncio.sleep(0.02)


async def test_a_rotation_under_load_parks_nothing_and_leaves_only_the_new_key(
    settings: Settings, order_probe: WireProbe, db: asyncpg.Connection, tmp_path: Path
) -> None:
    old, new = MasterKey(new_key()), MasterKey(new_key())
    keyring = tmp_path / "master.keys"
    write_keyring(keyring, old)
    rotating = settings.model_copy(update={"master_key": None, "master_key_file": keyring})
    service = ServiceProcess(rotating, tmp_path / "service.log", log_level="INFO")
    service.start()
    sent: list[str] = []
    stop = asyncio.Event()
    try:
        await eventually(lambda: _ready(rotating.health_port), timeout=90, what="ready")
        for order_id in ORDERS:
            await order_probe.send_and_wait(create_order(order_id))
        broken = update_order("O-0", {"billing_address": {**address(), "lines": ["x"] * 5}})
        await order_probe.send_and_wait(broken)  # a sealed dead letter under the old key
        load = asyncio.create_task(keep_updating(order_probe, sent, stop))
        await asyncio.sleep(1)

        write_keyring(keyring, new, old)  # the new key first: it wraps from now on
        rotated = await order_service(rotating, "rotate-master-key")
        assert rotated.code == 0, rotated.stderr
        await asyncio.sleep(1)
        stop.set()
        await load
        await order_probe.wait_for(lambda _: all(order_probe.outcomes(c) for c in sent), 60)

        wrapped_by = await db.fetch(
            "SELECT 'data' AS kind, master_key_id FROM data_keys"
            " UNION ALL SELECT 'letter', master_key_id FROM dead_letter_keys"
            " UNION ALL SELECT 'signing', master_key_id FROM signing_keys"
        )
        assert {(r["kind"], r["master_key_id"]) for r in wrapped_by} == {
            ("data", new.key_id),
            ("letter", new.key_id),
            ("signing", new.key_id),
        }

        # The rotation added a signing key; the one that signed the letter stays for checking.
        assert await db.fetchval("SELECT count(*) FROM signing_keys") == 2
        write_keyring(keyring, new)  # the old key is gone for good
        await asyncio.sleep(1.5)
        last = update_order("O-1", {"shipping_address": address("After Rotation")})
        answered = await order_probe.send_and_wait(last)
        assert answered.body["type"] == "order.updated", answered.body
        shown = await order_service(rotating, "show", "O-1", "--tenant", "tenant-a")
        letters = await order_service(
            rotating, "dead-letters", "list", "--family", "orders", "--show"
        )
    finally:
        stop.set()
        service.stop()
    outcomes = [order_probe.outcomes(c)[0] for c in sent]
    assert len(sent) > 20
    assert {o.body["type"] for o in outcomes} == {"order.created", "order.updated"}
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE outcome = 'parked'") == 0
    assert "After Rotation" in shown.stdout, shown.stderr
    # The letter sealed and signed before the rotation opens, and is still the service's.
    assert "NOT AUTHENTIC" not in letters.stdout
    assert '"lines": ["x", "x", "x", "x", "x"]' in letters.stdout
    assert "MASTER_KEY_FILE changed" in (tmp_path / "service.log").read_text()
