"""Bad input is answered and parked, and never stops the consumer."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from contracts.headers import DEAD_LETTER_KEY, DEAD_LETTER_REASON, DEAD_LETTER_SOURCE
from service.settings import Settings
from tests.support import WireProbe, command, create, details, running_service

KEY = "PO-P"  # one key, so every message lands on the same partition, in order


async def test_poison_messages_are_rejected_dead_lettered_and_passed(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    wrong_types = command(
        "purchase_order.create",
        KEY,
        details(products=[{"sku": "A", "quantity": "two"}], currency_code=12),
    )
    missing_fields = command("purchase_order.create", KEY, {"products": []})
    huge = command("purchase_order.create", KEY, details(note_to_supplier="x" * 300_000))
    unknown_type = command("purchase_order.teleport", KEY, {})
    valid = create(KEY)

    async with running_service(settings):
        await probe.send(b"{not json", key=KEY)
        await probe.send(b"\xff\xfe\x00garbage", key=KEY)
        await probe.send(b"[1, 2, 3]", key=KEY)
        for body in (wrong_types, missing_fields, huge, unknown_type):
            await probe.send(body)
        accepted = await probe.send_and_wait(valid)

    assert accepted.topic == probe.topics.events, "the consumer must go on after poison"

    def fields(body: dict[str, object]) -> list[tuple[str | None, str]]:
        [rejection] = probe.outcomes(str(body["command_id"]))
        assert rejection.topic == probe.topics.rejections
        errors = rejection.body["errors"]
        assert all(e["error_code"] == "invalid_request" for e in errors)
        assert all(e["error_type"] == "validation" for e in errors)
        return sorted((e["field"], e["message"]) for e in errors)

    assert [f for f, _ in fields(wrong_types)] == [
        "payload.currency_code",
        "payload.products.0.quantity",
    ]
    assert [f for f, _ in fields(missing_fields)] == [
        "payload.products",
        "payload.supplier_id",
        "payload.warehouse_id",
    ]
    [(_, too_big)] = fields(huge)
    assert "the limit is 262144" in too_big
    assert [f for f, _ in fields(unknown_type)] == ["type"]

    dead = probe.on(probe.topics.dead_letters)
    assert len(dead) == 7, "every unusable message is parked once"
    # What cannot be told apart as a purchase-order command may be anything, personal data
    # included: sealed. The purchase-order commands keep their bytes as they arrived.
    plain = sorted(d.value for d in dead if DEAD_LETTER_KEY not in d.headers)
    sent = (wrong_types, missing_fields, huge, unknown_type)
    assert plain == sorted(json.dumps(body).encode() for body in sent)
    assert all(DEAD_LETTER_REASON in d.headers and DEAD_LETTER_SOURCE in d.headers for d in dead)
    reasons = b"\n".join(d.headers[DEAD_LETTER_REASON] for d in dead)
    assert b"not JSON" in reasons
    assert b"JSON object" in reasons

    outcomes = await db.fetch("SELECT outcome, count(*) FROM inbox GROUP BY outcome ORDER BY 1")
    assert [(r["outcome"], r["count"]) for r in outcomes] == [
        ("accepted", 1),
        ("dead_lettered", 7),
    ]


async def test_a_key_that_differs_from_the_document_id_is_refused(
    settings: Settings, probe: WireProbe
) -> None:
    misrouted = create("PO-K")
    async with running_service(settings):
        await probe.send(misrouted, key="SOMETHING-ELSE")
        rejection = await probe.outcome(misrouted["command_id"])
    [error] = rejection.body["errors"]
    assert error["field"] == "purchase_order_id"
    assert "Kafka key" in error["message"]


async def test_redelivered_poison_is_dead_lettered_once(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    bad = command("purchase_order.create", KEY, {"supplier_id": 1}, command_id=str(uuid.uuid4()))
    raw = json.dumps(bad).encode()
    async with running_service(settings):
        await probe.send(raw, key=KEY)
        await probe.send(raw, key=KEY)
        await probe.send_and_wait(create(KEY))
    assert len(probe.outcomes(bad["command_id"])) == 1
    assert len(probe.on(probe.topics.dead_letters)) == 1


async def test_what_the_edge_reader_refuses_is_parked_with_its_rule_over_kafka(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    # A tenant_id repeated as an escape (a gateway and this service could each read another),
    # NaN, and a body over the limit that a hostile sender breaks at its very end: each is
    # parked once with the rule it broke, and the consumer goes on.
    repeated = json.dumps(create(KEY)).replace(
        '"tenant_id":', '"\\u0074enant_id": "someone-else", "tenant_id":', 1
    )
    not_a_number = json.dumps(create(KEY)).replace('"quantity": 10', '"quantity": NaN', 1)
    broken_at_the_end = b'{"a":' + b"[" * 30 + b"1," * 150_000 + b"1" + b"]" * 30 + b",]"
    async with running_service(settings):
        for body in (repeated.encode(), not_a_number.encode(), broken_at_the_end):
            await probe.send(body, key=KEY)
        await probe.send_and_wait(create(KEY))

    dead = probe.on(probe.topics.dead_letters)
    assert len(dead) == 3
    reasons = sorted(d.headers[DEAD_LETTER_REASON].decode() for d in dead)
    assert any('repeats the member name "tenant_id" at the top level' in r for r in reasons)
    assert any("NaN is not a JSON number" in r for r in reasons)
    assert any("body is not JSON: Expecting property name" in r for r in reasons)
    outcomes = await db.fetch("SELECT outcome, count(*) FROM inbox GROUP BY outcome ORDER BY 1")
    assert [(r["outcome"], r["count"]) for r in outcomes] == [
        ("accepted", 1),
        ("dead_lettered", 3),
    ]


async def test_broken_bodies_are_answered_once_per_content_never_in_an_admitted_ids_name(
    settings: Settings, probe: WireProbe, db: asyncpg.Connection
) -> None:
    """What a hostile producer gets from broken bodies under someone's command_id: each
    distinct content is set aside and answered once (its bytes are its key: the same bytes again
    change nothing, one byte more is another request), a tombstone is set aside once per record,
    the corrected command under that command_id is still decided, and once it is, a broken copy
    under its command_id is set aside with no answer in its name."""
    owner = str(uuid.uuid4())
    broken = [  # (bytes, key): each path of the parser that keys a message by its bytes
        (command("purchase_order.create", KEY, details(currency_code="??"), command_id=owner), KEY),
        (
            command(
                "purchase_order.create", KEY, details(note_to_supplier="a\0b"), command_id=owner
            ),
            KEY,
        ),
        (
            command(
                "purchase_order.create",
                KEY,
                details(note_to_supplier="x" * 300_000),
                command_id=owner,
            ),
            KEY,
        ),
        (create(KEY, command_id=owner), "PO-SOMEONE-ELSE"),
    ]
    sent = [(json.dumps(body).encode(), key) for body, key in broken]

    def rejections() -> list[object]:
        return [r for r in probe.outcomes(owner) if r.topic == probe.topics.rejections]

    async with running_service(settings):
        for raw, key in sent:
            for value in (raw, raw, raw + b" "):  # a re-send, then one byte more
                await probe.send_raw(key.encode(), value)
        await probe.wait_for(lambda _: len(rejections()) == 2 * len(sent))
        await probe.send(create(KEY, command_id=owner))  # corrected: decided
        await probe.wait_for(lambda _: len(probe.outcomes(owner)) > 2 * len(sent))
        await probe.send_raw(KEY.encode(), sent[0][0] + b"  ")  # a broken copy, now taken
        for _ in range(2):
            await probe.send_raw(KEY.encode(), None)  # a tombstone, twice
        await probe.wait_for(lambda _: len(probe.on(probe.topics.dead_letters)) == 11)
        await probe.send_and_wait(create("PO-AFTER"))  # the consumer goes on
        await asyncio.sleep(0.5)  # a second answer to anything would show by now

    assert len(rejections()) == 2 * len(sent), "one answer per distinct content, none after"
    assert [r.topic for r in probe.outcomes(owner)].count(probe.topics.events) == 1
    assert len(probe.on(probe.topics.dead_letters)) == 11
    outcomes = await db.fetch("SELECT outcome, count(*) FROM inbox GROUP BY outcome ORDER BY 1")
    assert [(r["outcome"], r["count"]) for r in outcomes] == [
        ("accepted", 2),
        ("dead_lettered", 11),
    ]
