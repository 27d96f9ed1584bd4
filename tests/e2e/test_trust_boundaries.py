"""Nobody acts as someone else: every path around the token gate that a review found, tried from
outside over Kafka against the real service, exactly as a hostile producer would send it.

The holes, by number as the review listed them: 1 customers driving fulfilment, 2 tokens copied
off the commands topic, 3 command ids squatted by other senders, 4 claimed actors believed in
`verify`, 5 customers learning about other customers through order.create and previews, 6 dead
letter replays acting with the operator's authority (test_dead_letter_redrive.py and the
integration tests of replays), 7 keys that fail open (and test_key_service.py), 8 the smaller
holes.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contract_tools.client import Accepted, CommandClient
from contracts.orders import ORDER_COMMAND
from service.app.auth import AuthMode
from service.settings import Settings
from tests.support import (
    Record,
    WireProbe,
    address,
    create,
    create_order,
    delete_order,
    order_command,
    order_service,
    order_status,
    redact_customer,
    running_service,
    update_order,
)
from tests.tokens import (
    ISSUER,
    OTHER_ISSUER,
    bearer,
    customer_token,
    gateway_token,
    misplaced_key_token,
    partner_token,
    secured,
    service_token,
    write_keys,
)

CHECKOUT_SCOPES = "orders:write orders:delete orders:redact customers:redact"
CUSTOMER_SCOPES = "orders:write orders:delete orders:redact customers:redact"


def key_of(body: dict[str, Any]) -> bytes:
    return str(
        body.get("order_id", body.get("customer_id", body.get("purchase_order_id")))
    ).encode()


async def ask(
    probe: WireProbe, body: dict[str, Any], headers: list[tuple[str, bytes]] | None = None
) -> Record:
    """Send exactly this, with these headers, and return the command's next outcome (event,
    rejection or preview) in its tenant."""

    def mine() -> list[Record]:
        return [
            r
            for r in probe.records
            if r.topic in (probe.topics.events, probe.topics.rejections, probe.topics.previews)
            and r.body.get("command_id") == body["command_id"]
            and r.body.get("tenant_id") == body["tenant_id"]
        ]

    before = len(mine())
    await probe.send_raw(key_of(body), json.dumps(body).encode(), headers or [])
    await probe.wait_for(lambda _: len(mine()) > before)
    return mine()[before]


def errors(record: Record) -> list[tuple[str, str | None]]:
    return [(e["error_code"], e["field"]) for e in record.body["errors"]]


def masked(record: Record, *ids: str) -> list[dict[str, Any]]:
    """A rejection's or preview's errors with the ids that differ on purpose taken out."""
    text = json.dumps(record.body["errors"])
    for n, name in enumerate(ids):
        text = text.replace(name, f"<id{n}>")
    found: list[dict[str, Any]] = json.loads(text)
    return found


async def checkout(probe: WireProbe, body: dict[str, Any]) -> Record:
    """What the shop's checkout service sends, with its own bound token."""
    return await ask(probe, body, bearer(service_token(body, "checkout", CHECKOUT_SCOPES)))


async def as_customer(
    probe: WireProbe, body: dict[str, Any], customer: str, scope: str = CUSTOMER_SCOPES
) -> Record:
    return await ask(probe, body, bearer(customer_token(body, customer, scope)))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "keys.json")


async def test_required_mode_closes_every_path_around_the_gate(
    settings: Settings,
    keys_file: Path,
    order_probe: WireProbe,
    probe: WireProbe,
    db: asyncpg.Connection,
) -> None:
    required = secured(settings, keys_file).model_copy(update={"preview_max_per_batch": 50})
    async with running_service(required):
        for order_id, customer, voucher in (
            ("O-1", "CUST-1", "V-OWN"),
            ("O-2", "CUST-2", "V-OTHER"),
            ("O-4", "CUST-1", None),
            ("O-DEL", "CUST-2", None),
        ):
            body = create_order(
                order_id, details={"customer_id": customer, "voucher_code": voucher}
            )
            assert (await checkout(order_probe, body)).body["type"] == "order.created"
        assert (await checkout(order_probe, delete_order("O-DEL"))).body["type"] == "order.deleted"
        erased = await checkout(order_probe, redact_customer("CUST-9"))
        assert erased.body["type"] == "customer.redacted"

        # 1. A customer cannot drive fulfilment, even holding the scope that lets them cancel.
        for status in ("ready", "fulfilled", "sent"):
            refused = await as_customer(order_probe, order_status("O-1", status), "CUST-1")
            assert errors(refused) == [("forbidden", "payload.status")]
        items = [{"sku": "MUG-RED", "quantity": 9, "unit_price": "1.00", "currency": "EUR"}]
        refused = await as_customer(order_probe, update_order("O-1", {"items": items}), "CUST-1")
        assert errors(refused) == [("forbidden", "payload.items")]
        own_po = create("PO-9")
        refused = await as_customer(probe, own_po, "CUST-1", "purchase_orders:write")
        assert errors(refused) == [("forbidden", "type")]
        moved = await as_customer(
            order_probe, update_order("O-1", {"shipping_address": address("Ada L.")}), "CUST-1"
        )
        assert moved.body["type"] == "order.updated"
        assert moved.body["actor"] == {"type": "customer", "id": "CUST-1", "verified": True}
        cancel = order_status("O-4", "cancelled", "customer")
        cancelled = await as_customer(order_probe, cancel, "CUST-1")
        assert cancelled.body["type"] == "order.status_changed"
        assert order_probe.movements() == []  # nobody shipped anything

        # 2. A token read off the topic carries nothing but its own command.
        copied = customer_token(cancel, "CUST-1", CUSTOMER_SCOPES)
        for body in (order_status("O-1", "cancelled", "customer"), delete_order("O-1")):
            refused = await ask(order_probe, body, bearer(copied))
            assert errors(refused) == [("unauthenticated", None)]
            assert "bound to another command" in refused.body["errors"][0]["message"]
        unbound = service_token(None, "checkout", CHECKOUT_SCOPES)
        refused = await ask(order_probe, order_status("O-1", "ready"), bearer(unbound))
        assert errors(refused) == [("unauthenticated", None)]
        # A gateway's key may pass unbound customer tokens through, while they are fresh.
        fresh = await ask(
            order_probe,
            update_order("O-1", {"billing_address": address()}),
            bearer(gateway_token("CUST-1", "orders:write")),
        )
        assert fresh.body["type"] == "order.updated"
        stale = gateway_token("CUST-1", "orders:write", iat=int(time.time()) - 900)
        refused = await ask(
            order_probe, update_order("O-1", {"billing_address": address()}), bearer(stale)
        )
        assert errors(refused) == [("unauthenticated", None)]

        # 3. A command_id cannot be taken from its owner: not by an unreadable or invalid
        # message, not from another family, not from another tenant.
        victim_id = str(uuid.uuid4())
        squat = {"command_id": victim_id, "type": "bogus"}
        await probe.send_raw(b"PO-X", json.dumps(squat).encode())
        await probe.wait_for(lambda _: bool(probe.on(probe.topics.dead_letters)))
        stolen = create_order("O-EVIL", tenant_id="tenant-b", command_id=victim_id)
        taken = await ask(
            order_probe,
            stolen,
            bearer(service_token(stolen, "evil", CHECKOUT_SCOPES, kid="svc-b", tenant="tenant-b")),
        )
        assert taken.body["type"] == "order.created"  # in its own tenant, under its own scope
        options = {"bootstrap_servers": required.kafka_bootstrap_servers}
        async with CommandClient(
            options.pop("bootstrap_servers"),
            tenant_id="tenant-a",
            topic_prefix=required.topic_prefix,
            token_for=lambda command: service_token(
                {"command_id": str(command.command_id)}, "checkout", CHECKOUT_SCOPES
            ),
            timeout_seconds=45,
        ) as client:
            victim = ORDER_COMMAND.validate_python(create_order("O-VICTIM", command_id=victim_id))
            outcome = await client.send(victim)
        assert isinstance(outcome, Accepted), outcome
        [created] = outcome.events
        assert (created.type, created.document_id) == ("order.created", "O-VICTIM")
        event = await order_probe.event(str(created.event_id))
        assert (event["tenant_id"], event["order_id"]) == ("tenant-a", "O-VICTIM")

        # 5. What a customer's create and preview tell them about others: nothing. Another
        # customer's live order and a deleted order answer alike, with no version ...
        for dry_run in (False, True):
            extra = {"dry_run": True} if dry_run else {}
            taken_live = create_order("O-2", expected_version=0, **extra)
            taken_gone = create_order("O-DEL", expected_version=0, **extra)
            live = await as_customer(order_probe, taken_live, "CUST-1")
            gone = await as_customer(order_probe, taken_gone, "CUST-1")
            assert masked(live, "O-2") == masked(gone, "O-DEL")
            assert errors(live) == [("already_exists", "order_id")]
            # ... an erased customer and one never seen answer alike ...
            for_erased = create_order("O-N1", details={"customer_id": "CUST-9"}, **extra)
            for_unknown = create_order("O-N2", details={"customer_id": "CUST-8"}, **extra)
            a = await as_customer(order_probe, for_erased, "CUST-1")
            b = await as_customer(order_probe, for_unknown, "CUST-1")
            assert masked(a, "O-N1") == masked(b, "O-N2")
            assert errors(a) == [("invalid_request", "payload.customer_id")]
            # ... and a voucher held by another customer answers as one held by their own.
            theirs = create_order("O-N3", details={"voucher_code": "V-OTHER"}, **extra)
            own = create_order("O-N4", details={"voucher_code": "V-OWN"}, **extra)
            a = await as_customer(order_probe, theirs, "CUST-1")
            b = await as_customer(order_probe, own, "CUST-1")
            assert masked(a, "O-N3", "V-OTHER") == masked(b, "O-N4", "V-OWN")
            # An id taken by another customer tells nothing of the voucher that order holds.
            held = create_order("O-2", details={"voucher_code": "V-OTHER"}, **extra)
            free = create_order("O-2", details={"voucher_code": "V-FREE"}, **extra)
            a = await as_customer(order_probe, held, "CUST-1")
            b = await as_customer(order_probe, free, "CUST-1")
            assert masked(a, "V-OTHER") == masked(b, "V-FREE") == masked(live)
        # Erasing another customer answers alike whether they were erased or never existed.
        a = await as_customer(order_probe, redact_customer("CUST-9"), "CUST-1")
        b = await as_customer(order_probe, redact_customer("CUST-8"), "CUST-1")
        assert masked(a, "CUST-9") == masked(b, "CUST-8")

        # 7. A key signs only for its own issuer.
        claimed = order_status("O-1", "cancelled", "customer")
        refused = await ask(
            order_probe,
            claimed,
            bearer(partner_token(claimed, "partner", CHECKOUT_SCOPES, iss=ISSUER)),
        )
        assert errors(refused) == [("unauthenticated", None)]
        partner = await ask(
            order_probe,
            claimed,
            bearer(
                partner_token(
                    claimed, "partner", CHECKOUT_SCOPES, iss=OTHER_ISSUER, tenant="tenant-a"
                )
            ),
        )
        assert partner.body["type"] == "order.status_changed"
        # A private key in the file verifies by its public half: no failure, no dead letter.
        signed = update_order("O-2", {"billing_address": address("Ada K.")})
        verified = await ask(
            order_probe, signed, bearer(misplaced_key_token(signed, "erp", CHECKOUT_SCOPES))
        )
        assert verified.body["type"] == "order.updated"

        # 8. Two authorization headers; a subject the events could not carry.
        two = delete_order("O-2")
        token = service_token(two, "checkout", CHECKOUT_SCOPES)
        refused = await ask(order_probe, two, [*bearer(token), *bearer(token)])
        assert errors(refused) == [("unauthenticated", None)]
        for subject in ("", "x" * 129):
            body = order_status("O-2", "ready")
            refused = await ask(
                order_probe, body, bearer(service_token(body, subject, CHECKOUT_SCOPES))
            )
            assert errors(refused) == [("unauthenticated", None)]
        # A decided command copied without its token gets no second answer.
        decided = order_status("O-2", "ready")
        await checkout(order_probe, decided)
        await order_probe.send_raw(b"O-2", json.dumps(decided).encode())
        marker = await checkout(order_probe, order_status("O-2", "fulfilled"))  # same partition
        assert marker.body["type"] == "order.status_changed"
        assert len(order_probe.outcomes(decided["command_id"])) == 1
        # Repeated member names: a gateway and the service must not read two tenants.
        command_id = uuid.uuid4()
        twice = (
            f'{{"command_id": "{command_id}", "type": "order.delete", "tenant_id": "tenant-b",'
            ' "tenant_id": "tenant-a", "order_id": "O-2", "payload": {}}'
        ).encode()
        await order_probe.send_raw(b"O-2", twice)
        await order_probe.wait_for(
            lambda _: any(
                b"I-JSON" in r.headers.get("x-dead-letter-reason", b"")
                for r in order_probe.on(order_probe.topics.dead_letters)
            )
        )

    # The refusals changed nothing: O-1's one status change is the partner's cancel.
    changes = await db.fetch(
        "SELECT actor_type, actor_id FROM order_history"
        " WHERE order_id = 'O-1' AND event_type = 'order.status_changed'"
    )
    assert [tuple(row) for row in changes] == [("service", "partner")]
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE outcome = 'parked'") == 0


async def test_previews_beyond_the_batch_limit_are_answered_rate_limited(
    settings: Settings, keys_file: Path, order_probe: WireProbe
) -> None:
    limited = secured(settings, keys_file).model_copy(update={"preview_max_per_batch": 0})
    async with running_service(limited):
        body = create_order("O-1", dry_run=True)
        preview = await checkout(order_probe, body)
        assert preview.topic == order_probe.topics.previews
        assert not preview.body["would_accept"]
        assert errors(preview) == [("rate_limited", None)]


async def test_verify_mode_takes_no_erasure_on_trust_and_says_who_was_verified(
    settings: Settings, keys_file: Path, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    verify = secured(settings, keys_file, AuthMode.VERIFY)
    async with running_service(verify):
        claimed = create_order("O-1", actor=("service", "checkout"))
        created = await ask(order_probe, claimed)
        assert created.body["actor"] == {"type": "service", "id": "checkout", "verified": False}
        proven = create_order("O-2")
        created = await checkout(order_probe, proven)
        assert created.body["actor"] == {"type": "service", "id": "checkout", "verified": True}

        # 4. A message with no token and a system actor does not erase anyone ...
        for body in (
            redact_customer("CUST-1"),
            delete_order("O-1"),
            order_command("order.redact", "O-1", {}),
        ):
            refused = await ask(order_probe, {**body, "actor": {"type": "system", "id": "x"}})
            assert errors(refused) == [("unauthenticated", None)]
            assert "needs a token" in refused.body["errors"][0]["message"]
        # ... and a claimed customer cannot do what a verified one may not.
        refused = await ask(order_probe, order_status("O-1", "ready", actor=("customer", "CUST-1")))
        assert errors(refused) == [("forbidden", "payload.status")]
    assert await db.fetchval("SELECT count(*) FROM erased_customers") == 0


NOT_FOUND_FAILS = """
CREATE FUNCTION simulated_defect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF position('"not_found"'::bytea IN NEW.payload) > 0 THEN
        RAISE EXCEPTION 'simulated defect';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER simulated_defect BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION simulated_defect();
"""


async def test_a_replay_acts_with_the_senders_authority_never_the_operators(
    settings: Settings, keys_file: Path, order_probe: WireProbe, db: asyncpg.Connection
) -> None:
    # 6. A customer's command on someone else's order, parked before its answer could be
    # written, is replayed by an operator: it is decided as the customer's, so it is refused
    # as a missing order, not carried out with the operator's authority.
    required = secured(settings, keys_file)
    async with running_service(required):
        await checkout(order_probe, create_order("O-1", details={"customer_id": "CUST-1"}))
        await db.execute(NOT_FOUND_FAILS)
        foreign = delete_order("O-1")
        parked = await as_customer(order_probe, foreign, "CUST-2")
        assert errors(parked) == [("processing_failed", None)]
        await db.execute("DROP TRIGGER simulated_defect ON outbox")  # the fix

        listed = await order_service(required, "dead-letters", "list", "--family", "orders")
        assert "authentic" in listed.stdout
        assert "authority: customer:CUST-2" in listed.stdout
        replayed = await order_service(
            required, "dead-letters", "replay", "--all", "--operator", "ops-7"
        )
        assert replayed.code == 0, replayed.stderr
        again = await order_probe.wait_for(
            lambda _: len(order_probe.outcomes(foreign["command_id"])) > 1
        )
        assert again
        answer = order_probe.outcomes(foreign["command_id"])[1]
        assert errors(answer) == [("not_found", "order_id")]
    assert await db.fetchval("SELECT status FROM orders WHERE order_id = 'O-1'") == "placed"
    assert (
        await db.fetchval("SELECT operator FROM dead_letter_actions WHERE action = 'replayed'")
        == "ops-7"
    )


async def test_a_token_authorizes_one_request_and_nobody_answers_for_another(
    settings: Settings, keys_file: Path, order_probe: WireProbe, probe: WireProbe
) -> None:
    required = secured(settings, keys_file)
    async with running_service(required):
        await checkout(order_probe, create_order("O-1", details={"customer_id": "CUST-1"}))

        # A token seen on a dry run carries no real command, not even with the same id.
        dry = order_status("O-1", "cancelled", "customer", dry_run=True)
        token = customer_token(dry, "CUST-1", CUSTOMER_SCOPES)
        preview = await ask(order_probe, dry, bearer(token))
        assert preview.body["would_accept"]
        real = {**dry, "dry_run": False, "payload": {"status": "cancelled", "reason": "other"}}
        refused = await ask(order_probe, real, bearer(token))
        assert errors(refused) == [("unauthenticated", None)]
        assert "already used for another request" in refused.body["errors"][0]["message"]
        again = await ask(order_probe, dry, bearer(token))  # the same request: a re-send
        assert again.body["would_accept"]
        probing = {**dry, "payload": {"status": "cancelled", "reason": "fraud"}}
        refused = await ask(order_probe, probing, bearer(token))
        assert errors(refused) == [("unauthenticated", None)]  # any other preview: no

        # Nor in the other family, nor after its own command was refused.
        both = "orders:write purchase_orders:write"
        delete = delete_order("O-1")
        token = service_token(delete, "erp", both)
        refused = await ask(order_probe, delete, bearer(token))
        assert errors(refused) == [("forbidden", "type")]  # no orders:delete scope
        elsewhere = create("PO-1", command_id=delete["command_id"])
        refused = await ask(probe, elsewhere, bearer(token))
        assert errors(refused) == [("unauthenticated", None)]
        # A shared secret acts only in its tenants.
        foreign = create_order("O-B", tenant_id="tenant-b")
        refused = await ask(
            order_probe,
            foreign,
            bearer(service_token(foreign, "checkout", CHECKOUT_SCOPES, tenant="tenant-b")),
        )
        assert errors(refused) == [("unauthenticated", None)]

        # Once a command is decided, nothing answers in its name: not its bytes under another
        # Kafka key (invalid), nor a copy with the token stripped or altered.
        ready = order_status("O-1", "ready")
        decided = await checkout(order_probe, ready)
        assert decided.body["type"] == "order.status_changed"
        raw = json.dumps(ready).encode()
        await order_probe.send_raw(b"O-OTHER", raw)
        await order_probe.send_raw(b"O-1", raw, bearer(token + "x"))
        await order_probe.send_raw(b"O-1", raw)
        await order_probe.wait_for(
            lambda _: any(
                b"Kafka key" in r.headers.get("x-dead-letter-reason", b"")
                for r in order_probe.on(order_probe.topics.dead_letters)
            )
        )
        marker = await checkout(order_probe, order_status("O-1", "fulfilled"))
        assert marker.body["type"] == "order.status_changed"
        assert [r.topic for r in order_probe.outcomes(ready["command_id"])] == [
            order_probe.topics.events
        ]


async def test_a_command_id_spelt_another_way_is_still_its_owners(
    settings: Settings, keys_file: Path, order_probe: WireProbe
) -> None:
    # 3, in another spelling: a valid command without a token, naming in capitals and braces
    # the id an admitted command holds, is refused without an answer in that id's name, which
    # would reach the owner as if it were theirs.
    async with running_service(secured(settings, keys_file)):
        victim = create_order("O-SPELT")
        created = await checkout(order_probe, victim)
        assert created.body["type"] == "order.created"
        squat = create_order("O-SPELT", command_id="{" + victim["command_id"].upper() + "}")
        await order_probe.send_raw(b"O-SPELT", json.dumps(squat).encode())
        after = update_order("O-SPELT", {"billing_address": address()})
        assert (await checkout(order_probe, after)).body["type"] == "order.updated"
    named = [
        r.body["type"] if r.topic == order_probe.topics.events else r.topic
        for r in order_probe.records
        if r.body.get("command_id") == victim["command_id"]
    ]
    assert named == ["order.created"]
