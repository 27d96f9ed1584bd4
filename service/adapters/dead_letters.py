"""Dead letters as operators handle them: read from the dead-letter topics, opened (sealed
ones with the master key), re-published to the commands topic, or purged.

Kafka records cannot change, so what was done with a letter is kept in Postgres beside its
position (dead_letter_actions).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.adapters.crypto import MasterKey
from service.adapters.kafka_connection import KafkaConnection
from service.adapters.personal_data import open_dead_letter
from service.app.auth import AUTHORIZATION
from service.app.outcomes import (
    DEAD_LETTER_HEADERS,
    DEAD_LETTER_KEY,
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    REPLAYED_FROM,
)
from service.errors import ConfigurationError

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Original:
    """A message as it arrived on the commands topic."""

    key: bytes | None
    value: bytes
    headers: Headers


@dataclass(frozen=True)
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
        return uuid.UUID(key_id) if key_id else None

    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.timestamp_ms / 1000)

    def _header(self, name: str) -> str:
        return next((v.decode("ascii", "replace") for k, v in self.headers if k == name), "")


async def read_dead_letters(
    connection: KafkaConnection, topic: str, db: asyncpg.Connection
) -> list[DeadLetter]:
    """Every letter on the topic now, oldest first per partition, with what was done to it."""
    consumer = AIOKafkaConsumer(**connection.client_options(), enable_auto_commit=False)
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

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += [r for r in batch if r.offset < ends[TopicPartition(topic, r.partition)]]
    finally:
        await consumer.stop()
    actions: dict[tuple[int, int], dict[str, datetime]] = {}
    for row in await db.fetch(
        'SELECT partition, "offset", action, acted_at FROM dead_letter_actions WHERE topic = $1',
        topic,
    ):
        actions.setdefault((row["partition"], row["offset"]), {})[row["action"]] = row["acted_at"]
    return sorted(
        (
            DeadLetter(
                r.topic,
                r.partition,
                r.offset,
                r.timestamp,
                r.key,
                r.value or b"",
                tuple((name, value or b"") for name, value in r.headers or ()),
                actions.get((r.partition, r.offset), {}),
            )
            for r in records
        ),
        key=lambda letter: (letter.partition, letter.offset),
    )


async def open_letter(
    db: asyncpg.Connection, master: MasterKey | None, letter: DeadLetter
) -> Original | None:
    """The message as it arrived; None when its sealing key is gone (expired, the customer
    erased, or purged), and with it the message. Sealed letters need the master key."""
    key_id = letter.sealed_key_id
    if key_id is None:
        headers = tuple((k, v) for k, v in letter.headers if k not in DEAD_LETTER_HEADERS)
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
    token: str | None = None,
) -> None:
    """Publish each message again to the commands topic, as it arrived, naming where it was
    parked, with `token` as its actor token (letters never keep the one they came with);
    then record the replay."""
    producer = AIOKafkaProducer(**connection.client_options(), acks="all")
    await producer.start()
    try:
        for letter, original in letters:
            origin = f"{letter.topic}/{letter.position}".encode()
            headers = [(k, v) for k, v in original.headers if k != REPLAYED_FROM]
            if token is not None:
                headers.append((AUTHORIZATION, f"Bearer {token}".encode()))
            await producer.send_and_wait(
                commands_topic,
                original.value,
                key=original.key,
                headers=[*headers, (REPLAYED_FROM, origin)],
            )
            await _record(db, letter, "replayed")
    finally:
        await producer.stop()


async def purge(db: asyncpg.Connection, letters: Sequence[DeadLetter]) -> int:
    """Mark the letters purged and destroy the keys of sealed ones, which makes them unreadable
    for good; returns how many keys were destroyed. The records themselves stay on the topic
    until its retention removes them."""
    destroyed = 0
    async with db.transaction():
        for letter in letters:
            if letter.sealed_key_id is not None:
                status = await db.execute(
                    "DELETE FROM dead_letter_keys WHERE key_id = $1", letter.sealed_key_id
                )
                destroyed += int(status.rsplit(" ", 1)[-1])
            await _record(db, letter, "purged")
    return destroyed


async def _record(db: asyncpg.Connection, letter: DeadLetter, action: str) -> None:
    await db.execute(
        'INSERT INTO dead_letter_actions (topic, partition, "offset", action)'
        " VALUES ($1, $2, $3, $4)"
        ' ON CONFLICT (topic, partition, "offset", action) DO UPDATE SET acted_at = now()',
        letter.topic,
        letter.partition,
        letter.offset,
        action,
    )
