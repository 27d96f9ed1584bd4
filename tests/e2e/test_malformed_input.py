"""Every message gets exactly one answer, whatever it holds: generated malformed messages of
every class, mixed with valid commands, through the real pipeline of both families.

FUZZ_ROUNDS (default 1, about 70 messages per family and round) makes the run larger.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.headers import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE
from contracts.topics import ORDERS, PURCHASE_ORDERS
from service.app.purchase_orders.family import purchase_order_family
from service.devstack.provision import Endpoints
from service.settings import Settings
from tests.malformed import SHAPES, Case, malformed_cases
from tests.support import (
    Record,
    ServiceProcess,
    WireProbe,
    committed_offsets,
    create,
    end_offsets,
    eventually,
    running_service,
)

ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "1"))


async def send_mixed(
    probe: WireProbe, family: str, cases: list[Case], rng: random.Random
) -> tuple[dict[str, Case], list[str]]:
    """Send the cases with a valid command after every few; (source -> case, valid ids)."""
    sent: dict[str, Case] = {}
    valid: list[str] = []
    shape = SHAPES[family]
    for index, case in enumerate(cases):
        sent[await probe.send_raw(case.key, case.value, case.headers)] = case
        if index % 5 == 0:
            body = shape.valid(f"OK-{uuid.uuid4().hex[:8]}")
            await probe.send(body)
            valid.append(body["command_id"])
    return sent, valid


def dead_letter_sources(probe: WireProbe) -> Counter[str]:
    sources: Counter[str] = Counter()
    for record in probe.on(probe.topics.dead_letters):
        source = record.headers[DEAD_LETTER_SOURCE].decode()
        sources[source[: source.index("@") + 1]] += 1
    return sources


def answers(probe: WireProbe, sent: dict[str, Case], valid: list[str]) -> bool:
    letters = dead_letter_sources(probe)
    return all(letters[source] for source in sent) and all(probe.outcomes(c) for c in valid)


def error_kinds(record: Record) -> list[tuple[str, str]]:
    return sorted({(e["error_type"], e["error_code"]) for e in record.body["errors"]})


async def test_every_malformed_message_gets_exactly_one_answer_in_both_families(
    stack: Endpoints, settings: Settings, probe: WireProbe, order_probe: WireProbe
) -> None:
    rng = random.Random(20261123)
    cases = {family: malformed_cases(family, rng, ROUNDS) for family in SHAPES}
    async with running_service(settings):
        await probe.send_and_wait(create("PO-WARM"))  # the consumers have joined
        sent_po, valid_po = await send_mixed(probe, PURCHASE_ORDERS, cases[PURCHASE_ORDERS], rng)
        sent_o, valid_o = await send_mixed(order_probe, ORDERS, cases[ORDERS], rng)
        await probe.wait_for(lambda _: answers(probe, sent_po, valid_po), timeout=120)
        await order_probe.wait_for(lambda _: answers(order_probe, sent_o, valid_o), timeout=120)
        await asyncio.sleep(0.5)  # anything sent twice by mistake would show by now

    treatment: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for family, wire, sent, valid in (
        (PURCHASE_ORDERS, probe, sent_po, valid_po),
        (ORDERS, order_probe, sent_o, valid_o),
    ):
        letters = dead_letter_sources(wire)
        per_kind: dict[str, list[tuple[str, str]]] = {}
        for source, case in sent.items():
            assert letters[source] == 1, f"{family} {case.kind}: {letters[source]} dead letters"
            outcomes = wire.outcomes(case.command_id) if case.command_id else []
            if case.command_id is None:
                per_kind[case.kind] = []
                continue
            assert [r.topic for r in outcomes] == [wire.topics.rejections], (
                f"{family} {case.kind}: a readable command_id must get one rejection"
            )
            per_kind[case.kind] = error_kinds(outcomes[0])
            assert set(per_kind[case.kind]) == {("validation", "invalid_request")}, case.kind
        for command_id in valid:
            assert [r.topic for r in wire.outcomes(command_id)] == [wire.topics.events]
        reasons = [r.headers[DEAD_LETTER_REASON] for r in wire.on(wire.topics.dead_letters)]
        assert all(reason.isascii() for reason in reasons), "dead-letter reasons are escaped"
        treatment[family] = per_kind

        group = f"{settings.consumer_group}.{family}"
        committed = await committed_offsets(
            settings.kafka_bootstrap_servers, group, wire.topics.commands
        )
        ends = await end_offsets(settings.kafka_bootstrap_servers, wire.topics.commands)
        # Every partition that received anything is committed to its end; an empty one has
        # nothing to commit.
        assert committed == {partition: end for partition, end in ends.items() if end}

    assert treatment[PURCHASE_ORDERS] == treatment[ORDERS], "both families answer alike"


async def test_dead_letters_of_purchase_orders_keep_key_and_headers_as_received(
    settings: Settings, probe: WireProbe
) -> None:
    key, headers = b"PO-\x00\xff", [("trace\x00id", b"\x00\xfe"), ("plain", b"v")]
    body = create("PO-X")
    body["purchase_order_id"] = "PO-\u0000-x"
    async with running_service(settings):
        source = await probe.send_raw(key, json.dumps(body).encode(), headers)
        rejection = await probe.outcome(body["command_id"])
        await probe.wait_for(lambda _: bool(dead_letter_sources(probe)[source]))
    [letter] = probe.on(probe.topics.dead_letters)
    assert letter.raw_key == key
    assert [(n, v) for n, v in letter.headers.items() if not n.startswith("x-dead")] == headers
    assert letter.value == json.dumps(body).encode()
    [error] = rejection.body["errors"]
    assert (error["field"], error["error_code"]) == ("purchase_order_id", "invalid_request")
    assert rejection.body["purchase_order_id"] is None, "unstorable ids are not echoed"


@pytest.mark.slow
async def test_a_message_that_cannot_even_be_parked_holds_its_offset_until_it_can(
    stack: Endpoints,
    settings: Settings,
    probe: WireProbe,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """Parking fails (a trigger refuses dead letters): the message is retried and reported,
    the offset stays before it, and once the fault clears it is answered and passed."""
    await db.execute(
        """
        CREATE FUNCTION refuse_dead_letters() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.topic LIKE '%.dlq' THEN RAISE EXCEPTION 'dead letters refused'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON outbox
            FOR EACH ROW EXECUTE FUNCTION refuse_dead_letters();
        """
    )
    group = purchase_order_family().consumer_group(settings.consumer_group)
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    try:
        await probe.send_and_wait(create("PO-A"))
        poison = b"{not json"
        source = await probe.send_raw(b"PO-A", poison)
        partition = int(source.split("/")[1])
        behind = create("PO-A")  # same key, same partition: must wait behind the poison
        await probe.send(behind)

        async def reported() -> bool:
            health = await asyncio.to_thread(_health, settings.health_port)
            return source in "".join(health["checks"]["consumer"]["unanswered"])

        await eventually(reported, timeout=60, what="the stuck message is reported")
        assert _health(settings.health_port)["status"] == "unhealthy"
        committed = await committed_offsets(
            stack.kafka_bootstrap_servers, group, probe.topics.commands
        )
        assert committed.get(partition, 0) <= int(source.split("/")[2].rstrip("@"))
        assert probe.outcomes(behind["command_id"]) == []

        await db.execute("DROP TRIGGER refuse_dead_letters ON outbox")
        await probe.wait_for(lambda _: bool(dead_letter_sources(probe)[source]), timeout=60)
        assert (await probe.outcome(behind["command_id"])).topic == probe.topics.rejections
        await eventually(lambda: _health(settings.health_port)["status"] == "ok", timeout=30)
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
    log = service.log()
    assert log.count("Traceback") <= 2, "a traceback once per failure kind, not per attempt"


def _health(port: int) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    return body
