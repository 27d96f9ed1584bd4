"""The board's two phases on Kafka: bootstrap (every state topic read to the end it had when the
board started) and follow (events topics from where they stood before the bootstrap began, and
the state topics from where it ended). No consumer group: a board reads every partition, and
keeps no position (it bootstraps again when it starts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.topics import DocumentTopics
from examples.state_board.board import Board, Change


@dataclass(frozen=True)
class Start:
    """Where following picks up: each events partition's end as it was before the state topics
    were read, each state partition where the bootstrap stopped reading."""

    events: dict[TopicPartition, int]
    states: dict[TopicPartition, int]


async def bootstrap(
    consumer: AIOKafkaConsumer, board: Board, families: Mapping[str, DocumentTopics]
) -> Start:
    """Fill `board` from the state topics: every record up to their ends as of now, tombstones
    removing. `consumer` is started, without a group."""
    # Events first: an event published before this point has its state published right after
    # it, so the state topic read next holds it (or following the state topic brings it, if
    # the relay appended it a moment later); nothing is lost between the two phases.
    events = await _ends(consumer, [t.events for t in families.values()])
    states = await _ends(consumer, [t.state for t in families.values()])
    family_of = {t.state: name for name, t in families.items()}
    consumer.assign(list(states))
    await consumer.seek_to_beginning(*states)
    unread = {tp for tp in states if await consumer.position(tp) < states[tp]}
    while unread:
        fetched = await consumer.getmany(*unread, timeout_ms=1000)
        # The end is how far the board must read at least; a record past it is a newer state,
        # applied the same way. (Some brokers, the embedded one here among them, report a
        # partition's end as if its last batch held one record.)
        for tp, records in fetched.items():
            for record in records:
                board.apply_state(family_of[tp.topic], record.key or b"", record.value)
        unread = {tp for tp in unread if await consumer.position(tp) < states[tp]}
    return Start(events, {tp: await consumer.position(tp) for tp in states})


async def follow(
    consumer: AIOKafkaConsumer,
    board: Board,
    families: Mapping[str, DocumentTopics],
    start: Start,
    stop: asyncio.Event,
    on_change: Callable[[Change], None] = lambda _: None,
) -> None:
    """Apply what the events and state topics bring from `start` on, until `stop` is set."""
    of_events = {t.events: name for name, t in families.items()}
    of_states = {t.state: name for name, t in families.items()}
    consumer.assign([*start.events, *start.states])
    for tp, offset in (*start.events.items(), *start.states.items()):
        consumer.seek(tp, offset)
    while not stop.is_set():
        fetched = await consumer.getmany(timeout_ms=500)
        for tp, records in fetched.items():
            for record in records:
                if tp.topic in of_states:
                    change = board.apply_state(of_states[tp.topic], record.key or b"", record.value)
                else:
                    change = board.apply_event(of_events[tp.topic], record.value)
                if change is not None:
                    on_change(change)


async def _ends(consumer: AIOKafkaConsumer, topics: list[str]) -> dict[TopicPartition, int]:
    await consumer.topics()  # fresh metadata: the partitions of every topic
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        for p in consumer.partitions_for_topic(topic) or ()
    ]
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return ends
