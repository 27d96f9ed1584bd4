"""Dead letters as operators handle them: read from the dead-letter topics, checked for the
service's signature, opened (sealed ones with the master key), re-published to the commands
topic with the authority their command was admitted with, or purged.

Anyone allowed to produce to a `.dlq` topic can put a record there, so only letters that carry
the service's signature are replayed, and a replay carries no credential: only the letter's
recorded authority, signed for that one command, and the operator who replayed it.

Kafka records cannot change, so what was done with a letter, and by whom, is kept in Postgres
beside its position (dead_letter_actions).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.headers import (
    AUTHORIZATION,
    DEAD_LETTER_AUTHORITY,
    DEAD_LETTER_KEY,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    REPLAY_PREFIX,
)
from service.adapters.crypto import Keyring, new_key
from service.adapters.kafka_connection import KafkaConnection
from service.adapters.personal_data import open_dead_letter
from service.adapters.random_ids import random_uuid
from service.app.ports import Claims
from service.app.provenance import (
    Signer,
    authority_from_json,
    letter_is_authentic,
    replay_headers,
)
from service.domain.values import frozen
from service.errors import ConfigurationError, ServiceError

Headers = tuple[tuple[str, bytes], ...]


LETTER_SIGNING = "dead-letters"


async def letter_signer(db: asyncpg.Connection, keys: Keyring) -> Signer:
    """Signs and checks dead letters and replays: the service when it writes a letter or reads
    a replay, the CLI when it lists or replays letters. Its keys are random, kept in the
    database wrapped by the master key (a master-key rotation re-wraps them, so letters signed
    before stay authentic); the newest signs. The master key itself never signs anything."""
    rows = await _signing_keys(db)
    if not rows:
        await add_signing_key(db, keys)
        rows = await _signing_keys(db)
    opened = {
        row["key_id"].hex[:16]: keys.get(row["master_key_id"]).unwrap(
            row["wrapped_key"], row["key_id"]
        )
        for row in rows
    }
    newest = rows[-1]["key_id"].hex[:16]
    return Signer(opened.pop(newest), newest, opened)


async def add_signing_key(db: asyncpg.Connection, keys: Keyring) -> None:
    """A new signing key, wrapped by the current master key: from now on it signs."""
    key_id, key, master = random_uuid(), new_key(), keys.current
    await db.execute(
        "INSERT INTO signing_keys (key_id, purpose, wrapped_key, master_key_id)"
        " VALUES ($1, $2, $3, $4)",
        key_id,
        LETTER_SIGNING,
        master.wrap(key, key_id),
        master.key_id,
    )


async def _signing_keys(db: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT key_id, wrapped_key, master_key_id FROM signing_keys WHERE purpose = $1"
        " ORDER BY created_at, key_id",
        LETTER_SIGNING,
    )
    return rows


class NotAuthentic(ServiceError):
    """A letter without a valid signature of this service: anyone who can write to a
    dead-letter topic could have put it there, so it is never replayed."""

    def __init__(self, letter: DeadLetter) -> None:
        super().__init__(
            f"{letter.topic} {letter.position}: NOT AUTHENTIC: not written by this service"
            " (no valid signature); not replayed"
        )
        self.letter = letter


@frozen
class Original:
    """A message as it arrived on the commands topic."""

    key: bytes | None
    value: bytes
    headers: Headers


@frozen
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers
    actions: dict[str, datetime]
    """What operators did with it: 'replayed' and 'purged', with when."""
    operators: dict[str, str] = field(default_factory=dict)
    """Who did each of `actions`, where recorded."""
    authentic: bool = False
    """Whether the service wrote it, unaltered (its signature checks out). Not authentic unless
    checked: a letter built any other way is never taken for the service's."""
    authority: Claims | None = None
    """The verified claims its command was admitted with; None when it was not admitted on a
    token, or when the letter is not authentic (then nothing it says is trusted)."""

    @property
    def position(self) -> str:
        return f"{self.partition}/{self.offset}"

    @property
    def reason(self) -> str:
        return self._header(DEAD_LETTER_REASON)

    @property
    def source(self) -> str:
        return self._header(DEAD_LETTER_SOURCE)

    @property
    def sealed_key_id(self) -> uuid.UUID | None:
        key_id = self._header(DEAD_LETTER_KEY)
        try:
            return uuid.UUID(key_id) if key_id else None
        except ValueError:  # only in a letter the service did not write; listed all the same
            return None

    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.timestamp_ms / 1000)

    def _header(self, name: str) -> str:
        return next((v.decode("ascii", "replace") for k, v in self.headers if k == name), "")


async def read_dead_letters(
    connection: KafkaConnection, topic: str, db: asyncpg.Connection, signer: Signer
) -> list[DeadLetter]:
    """Every letter on the topic now, oldest first per partition, with what was done to it,
    and whether the service wrote it."""
    consumer = AIOKafkaConsumer(**connection.client_options("cli"), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        # Until the end offsets read at the start are reached and a poll then finds nothing
        # more: a broker may report a partition's end later than a consumer can read it (the
        # embedded one, with many topics), and a letter must never be missed.
        while True:
            fetched = await consumer.getmany(timeout_ms=1000)
            for batch in fetched.values():
                records += batch
            if not fetched and not await behind():
                break
    finally:
        await consumer.stop()
    actions: dict[tuple[int, int], dict[str, datetime]] = {}
    operators: dict[tuple[int, int], dict[str, str]] = {}
    for row in await db.fetch(
        'SELECT partition, "offset", action, acted_at, operator FROM dead_letter_actions'
        " WHERE topic = $1",
        topic,
    ):
        position = (row["partition"], row["offset"])
        actions.setdefault(position, {})[row["action"]] = row["acted_at"]
        if row["operator"] is not None:
            operators.setdefault(position, {})[row["action"]] = row["operator"]
    letters = []
    for r in records:
        value = r.value or b""
        headers = tuple((name, header or b"") for name, header in r.headers or ())
        authentic = letter_is_authentic(signer, r.topic, r.key, value, headers)
        position = (r.partition, r.offset)
        letters.append(
            DeadLetter(
                r.topic,
                r.partition,
                r.offset,
                r.timestamp,
                r.key,
                value,
                headers,
                actions.get(position, {}),
                operators.get(position, {}),
                authentic,
                _authority(headers) if authentic else None,
            )
        )
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


def _authority(headers: Headers) -> Claims | None:
    """The authority a letter records; None when it records none (or, never from this service,
    not exactly one readable one: less authority is the safe side)."""
    recorded = [value for name, value in headers if name == DEAD_LETTER_AUTHORITY]
    if len(recorded) != 1:
        return None
    try:
        return authority_from_json(recorded[0])
    except ValueError:
        return None


async def open_letter(
    db: asyncpg.Connection, master: Keyring | None, letter: DeadLetter
) -> Original | None:
    """The message as it arrived; None when its sealing key is gone (expired, the customer
    erased, or purged), and with it the message. Sealed letters need the master key."""
    key_id = letter.sealed_key_id
    if key_id is None:
        headers = tuple((k, v) for k, v in letter.headers if not _ours(k, DEAD_LETTER_PREFIX))
        return Original(letter.key, letter.value, headers)
    if master is None:
        raise ConfigurationError("opening a sealed dead letter needs the master key")
    raw = await open_dead_letter(db, master, key_id, letter.value)
    if raw is None:
        return None
    envelope = json.loads(raw)
    return Original(
        base64.b64decode(envelope["key"]) if envelope["key"] is not None else None,
        base64.b64decode(envelope["value"]),
        tuple((name, base64.b64decode(value)) for name, value in envelope["headers"]),
    )


async def replay(
    connection: KafkaConnection,
    commands_topic: str,
    db: asyncpg.Connection,
    letters: Sequence[tuple[DeadLetter, Original]],
    signer: Signer,
    operator: str,
) -> None:
    """Publish each message again to the commands topic, as it arrived, with signed headers
    naming where it was parked, the authority its command was admitted with and the operator;
    then record the replay, by whom.

    Raises NotAuthentic, before publishing anything, if any letter lacks the service's valid
    signature (checked here again: `DeadLetter.authentic` is only what a reader said). No
    credential is sent: the service grants a replay the letter's authority and nothing more.
    """
    for letter, _ in letters:
        if not letter_is_authentic(signer, letter.topic, letter.key, letter.value, letter.headers):
            raise NotAuthentic(letter)
    producer = AIOKafkaProducer(**connection.client_options("cli"), acks="all")
    await producer.start()
    try:
        for letter, original in letters:
            origin = f"{letter.topic}/{letter.position}"
            headers = [(k, v) for k, v in original.headers if _kept_on_replay(k)]
            headers += replay_headers(
                signer,
                commands_topic,
                original.key,
                original.value,
                origin,
                _authority(letter.headers),
                operator,
            )
            await producer.send_and_wait(
                commands_topic, original.value, key=original.key, headers=headers
            )
            await _record(db, letter, "replayed", operator)
    finally:
        await producer.stop()


def _ours(name: str, prefix: str) -> bool:
    return name.lower().startswith(prefix)


def _kept_on_replay(name: str) -> bool:
    # No credential (letters never keep one; a replay must not carry one whatever a letter
    # holds), and none of the service's own dead-letter or replay headers: those are written
    # afresh, so a replay never carries a grant but the one signed for it.
    return name.lower() != AUTHORIZATION and not (
        _ours(name, DEAD_LETTER_PREFIX) or _ours(name, REPLAY_PREFIX)
    )


async def purge(
    db: asyncpg.Connection, letters: Sequence[DeadLetter], operator: str | None = None
) -> int:
    """Mark the letters purged (by `operator`) and destroy the keys of authentic sealed ones,
    which makes them unreadable for good; returns how many keys were destroyed. The records
    themselves stay on the topic until its retention removes them."""
    destroyed = 0
    async with db.transaction():
        for letter in letters:
            # Only an authentic letter's key: a forged one could name the key of another
            # letter, and purging the forgery must not make that letter unreadable.
            if letter.authentic and letter.sealed_key_id is not None:
                status = await db.execute(
                    "DELETE FROM dead_letter_keys WHERE key_id = $1", letter.sealed_key_id
                )
                destroyed += int(status.rsplit(" ", 1)[-1])
            await _record(db, letter, "purged", operator)
    return destroyed


async def _record(
    db: asyncpg.Connection, letter: DeadLetter, action: str, operator: str | None
) -> None:
    # One row per letter and action: a second replay updates when, and who, it was done.
    await db.execute(
        'INSERT INTO dead_letter_actions (topic, partition, "offset", action, operator)'
        " VALUES ($1, $2, $3, $4, $5)"
        ' ON CONFLICT (topic, partition, "offset", action)'
        " DO UPDATE SET acted_at = now(), operator = EXCLUDED.operator",
        letter.topic,
        letter.partition,
        letter.offset,
        action,
        operator,
    )
