"""E-mail addresses sent over Kafka to the real service, by whoever may write to
orders.commands: each is read as EmailStr reads it (the common case without email-validator),
a refusal names the field and the rule but never the value, and a quarter-megabyte address
costs no more than any other refused command."""

from __future__ import annotations

import json

from service.settings import Settings
from tests.support import WireProbe, address, create_order, running_service

CANARY = "canary-ada-lovelace"


def order_with_email(order_id: str, email: str) -> dict[str, object]:
    return create_order(order_id, details={"shipping_address": address(email=email)})


async def test_addresses_are_read_as_emailstr_reads_them_and_refusals_never_quote_them(
    settings: Settings, order_probe: WireProbe
) -> None:
    async with running_service(settings):
        for n, accepted in enumerate(
            ["ada@example.org", "INFO@example.org", "Ada@Example.ORG", "ada@xn--bcher-kva.ch"]
        ):
            assert await order_probe.events_of(order_with_email(f"O-OK-{n}", accepted))
        refused = [
            f"{CANARY}@example.test",  # a special-use name
            f"{CANARY}@ab--c.org",  # a reserved hyphen pair
            f"{CANARY}..x@example.org",
            f"{CANARY}@" + "a." * 120_000 + "org",  # a quarter megabyte, refused by length
        ]
        for n, email in enumerate(refused):
            body = order_with_email(f"O-NO-{n}", email)
            record = await order_probe.send_and_wait(body)
            assert record.topic == order_probe.topics.rejections, email[:60]
            errors = record.body["errors"]
            assert [(e["error_code"], e["field"]) for e in errors] == [
                ("invalid_request", "payload.shipping_address.email")
            ]
            # Personal data: the rule is named, the value never repeated.
            assert CANARY not in json.dumps(record.body)
        # Still deciding after the large one, in order.
        assert await order_probe.events_of(order_with_email("O-AFTER", "ada@example.org"))
