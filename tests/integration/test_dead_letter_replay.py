"""Replaying dead letters on the real broker and Postgres: only letters the service signed are
replayed; a replay carries no credential, only the authority the letter records (signed for that
one command) and the operator who replayed it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.headers import (
    DEAD_LETTER_AUTHORITY,
    REPLAY_AUTHORITY,
    REPLAY_SIGNATURE,
    REPLAYED_FROM,
)
from service.adapters.crypto import new_key
from service.adapters.dead_letters import (
    NotAuthentic,
    Original,
    letter_signer,
    open_letter,
    purge,
    read_dead_letters,
    replay,
)
from service.adapters.kafka_connection import KafkaConnection
from service.app.incoming import IncomingMessage
from service.app.messages import dead_letter_message
from service.app.ports import Claims, OutboxMessage
from service.app.provenance import ReplayGrant, Signer, authority_json, read_replay
from service.app.purchase_orders.family import purchase_order_family
from service.devstack.provision import Endpoints
from service.settings import Settings
from tests.support import create_topics, order_service

BUYER = Claims(
    "clerk-7", "https://id.example", "buyer", "tenant-a", frozenset({"po:write"}), "cmd-1"
)
STAFF = Claims("root", "https://id.example", "admin", None, frozenset({"*"}), None)
VALUE = b'{"command_id": "cmd-1", "type": "purchase_order.delete"}'


def parked(commands_topic: str) -> IncomingMessage:
    """A command as it arrived: with a token, trace context, and the headers of an earlier
    replay whose grant someone tried to raise (a replayed command can be parked again)."""
    return IncomingMessage(
        commands_topic,
        0,
        3,
        1_700_000_000_000,
        b"PO-1",
        VALUE,
        (
            ("authorization", b"Bearer abc.def.ghi"),
            ("traceparent", b"00-ab-cd-01"),
            (REPLAYED_FROM, b"elsewhere/0/1"),
            (REPLAY_AUTHORITY, json.dumps({"claims": None, "replayed_by": "x"}).encode()),
            (REPLAY_SIGNATURE, b"k:00"),
        ),
    )


async def publish(
    stack: Endpoints,
    topic: str,
    key: bytes,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    """Straight onto the topic, as the relay (or anyone allowed to produce there) would."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await producer.stop()


async def publish_letter(stack: Endpoints, letter: OutboxMessage) -> None:
    await publish(stack, letter.topic, letter.key, letter.value, letter.headers)


async def publish_forgery(stack: Endpoints, topic: str, sealed_key: str = "not-a-uuid") -> None:
    """A letter the service never wrote, claiming staff authority, without a signature, with
    a reason that tries to look like an authentic listing, naming a sealing key."""
    await publish(
        stack,
        topic,
        b"PO-2",
        b'{"command_id": "cmd-2", "type": "purchase_order.delete"}',
        [
            ("x-dead-letter-reason", b"invalid\n  authentic\n  authority: admin:root"),
            ("x-dead-letter-source", f"{topic}/0/1@0".encode()),
            ("x-dead-letter-key", sealed_key.encode()),
            (DEAD_LETTER_AUTHORITY, authority_json(STAFF)),
        ],
    )


async def consumed(stack: Endpoints, topic: str) -> list[IncomingMessage]:
    """Everything on the topic now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        received: list[IncomingMessage] = []
        async with asyncio.timeout(30):
            while len(received) < end:
                r = await consumer.getone()
                headers = tuple((name, value or b"") for name, value in r.headers)
                received.append(
                    IncomingMessage(
                        r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, headers
                    )
                )
    finally:
        await consumer.stop()
    return received


async def actions(db: asyncpg.Connection, topic: str) -> list[tuple[int, str, str | None]]:
    rows = await db.fetch(
        'SELECT "offset", action, operator FROM dead_letter_actions WHERE topic = $1'
        ' ORDER BY "offset"',
        topic,
    )
    return [(row["offset"], row["action"], row["operator"]) for row in rows]


@pytest.fixture
def signer() -> Signer:
    return Signer(new_key(), "x")


async def test_a_replay_carries_the_letters_authority_not_a_token_and_names_its_origin(
    stack: Endpoints, db: asyncpg.Connection, topic_prefix: str, signer: Signer
) -> None:
    connection = KafkaConnection(stack.kafka_bootstrap_servers)
    family = purchase_order_family(topic_prefix)
    commands, dlq = family.topics.commands, family.topics.dead_letters
    await create_topics(connection, [commands, dlq], 1)
    await publish_letter(stack, dead_letter_message(family, parked(commands), "bad", BUYER, signer))

    (letter,) = await read_dead_letters(connection, dlq, db, signer)
    assert letter.authentic
    assert letter.authority == BUYER
    original = await open_letter(db, None, letter)
    assert original is not None
    await replay(connection, commands, db, [(letter, original)], signer, "alice")

    (record,) = await consumed(stack, commands)
    assert (record.key, record.value) == (b"PO-1", VALUE)
    names = [name for name, _ in record.headers]
    assert "authorization" not in names
    assert names == ["traceparent", REPLAYED_FROM, REPLAY_AUTHORITY, REPLAY_SIGNATURE]
    headers = dict(record.headers)
    assert headers[REPLAYED_FROM] == f"{dlq}/0/0".encode()
    assert json.loads(headers[REPLAY_AUTHORITY]) == {
        "claims": json.loads(authority_json(BUYER)),
        "replayed_by": "alice",
    }
    assert read_replay(signer, record) == ReplayGrant(f"{dlq}/0/0", BUYER, "alice")
    assert read_replay(Signer(new_key(), "x"), record) is None
    assert await actions(db, dlq) == [(0, "replayed", "alice")]


async def test_a_letter_without_the_services_signature_is_not_authentic_and_not_replayed(
    stack: Endpoints, db: asyncpg.Connection, topic_prefix: str, signer: Signer
) -> None:
    connection = KafkaConnection(stack.kafka_bootstrap_servers)
    family = purchase_order_family(topic_prefix)
    commands, dlq = family.topics.commands, family.topics.dead_letters
    await create_topics(connection, [commands, dlq], 1)
    # Naming the sealing key of some real letter: purging the forgery must not destroy it.
    real_key = uuid.uuid4()
    await db.execute(
        "INSERT INTO dead_letter_keys (key_id, wrapped_key, master_key_id, expires_at)"
        " VALUES ($1, 'x', 'm', now() + interval '1 day')",
        real_key,
    )
    await publish_forgery(stack, dlq, str(real_key))
    # A real letter signed under another master key (rotated, or another deployment's) is no
    # more this service's than a forgery.
    stranger = Signer(new_key(), "x")
    await publish_letter(
        stack, dead_letter_message(family, parked(commands), "bad", BUYER, stranger)
    )

    letters = await read_dead_letters(connection, dlq, db, signer)
    assert [(letter.authentic, letter.authority) for letter in letters] == [(False, None)] * 2
    for letter in letters:
        original = Original(letter.key, letter.value, ())
        with pytest.raises(NotAuthentic, match="NOT AUTHENTIC"):
            await replay(connection, commands, db, [(letter, original)], signer, "alice")
        # The field is only what a reader said: replay checks the signature itself.
        trusted = replace(letter, authentic=True, authority=STAFF)
        with pytest.raises(NotAuthentic):
            await replay(connection, commands, db, [(trusted, original)], signer, "alice")
    assert await consumed(stack, commands) == []
    assert await actions(db, dlq) == []

    assert await purge(db, letters, "alice") == 0
    assert await db.fetchval("SELECT count(*) FROM dead_letter_keys WHERE key_id = $1", real_key)
    assert await actions(db, dlq) == [(0, "purged", "alice"), (1, "purged", "alice")]


async def test_the_cli_lists_forgeries_as_not_authentic_and_refuses_to_replay_them(
    stack: Endpoints, db: asyncpg.Connection, settings: Settings
) -> None:
    connection = settings.kafka_connection()
    family = purchase_order_family(settings.topic_prefix)
    commands, dlq = family.topics.commands, family.topics.dead_letters
    await create_topics(connection, [commands, dlq], 1)
    signer = await letter_signer(db, settings.load_master_key())
    await publish_letter(stack, dead_letter_message(family, parked(commands), "bad", BUYER, signer))
    await publish_forgery(stack, dlq)
    # Refused before its token was checked: the letter records no authority.
    await publish_letter(
        stack, dead_letter_message(family, parked(commands), "not admitted", None, signer)
    )

    listed = await order_service(settings, "dead-letters", "list", "--family", "purchase-orders")
    assert listed.code == 0, listed.stderr
    real, forged, tokenless = listed.stdout.split(f"{dlq} ")[1:]
    assert real.startswith("0/0")
    assert "\n  authentic\n" in real
    assert "authority: buyer:clerk-7 (issuer https://id.example)" in real
    assert forged.startswith("0/1")
    assert (
        "NOT AUTHENTIC: not written by this service (no valid signature); replay refuses it"
        in forged
    )
    assert "admin" not in forged.split("reason:")[0]
    assert "\n  authentic" not in forged
    assert "reason: invalid\\n  authentic\\n  authority: admin:root" in forged
    assert "authority: none (the letter is not authentic" in forged
    assert "\n  authentic\n" in tokenless
    assert "authority: none (not admitted on a token)" in tokenless

    replayed = await order_service(
        settings,
        "dead-letters",
        "replay",
        "--family",
        "purchase-orders",
        "--all",
        "--operator",
        "alice",
    )
    assert replayed.code != 0
    assert f"{dlq} 0/1: NOT AUTHENTIC" in replayed.stderr
    assert "2 replayed" in replayed.stderr
    assert "1 refused (not authentic)" in replayed.stderr
    assert f"replayed {dlq} 0/0 to {commands} with authority buyer:clerk-7" in replayed.stdout
    assert f"replayed {dlq} 0/2 to {commands} with authority none" in replayed.stdout
    grants = [read_replay(signer, record) for record in await consumed(stack, commands)]
    assert grants == [
        ReplayGrant(f"{dlq}/0/0", BUYER, "alice"),
        ReplayGrant(f"{dlq}/0/2", None, "alice"),
    ]
    assert await actions(db, dlq) == [(0, "replayed", "alice"), (2, "replayed", "alice")]
    relisted = await order_service(settings, "dead-letters", "list", "--family", "purchase-orders")
    assert "replayed" in relisted.stdout
    assert "by alice" in relisted.stdout
