"""The FastStream application: consumes commands; commits offsets after decisions commit."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from service.app.incoming import IncomingMessage
from service.entrypoints.runtime import Runtime
from service.errors import ProcessingAbandonedError
from service.settings import Settings

log = logging.getLogger(__name__)


class _RebalanceLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Processing is sequential and every decision commits before its offset, so a revoke
    needs no flushing: an offset that fails to commit only causes a redelivery the inbox absorbs."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


async def _parse_without_decoding_headers(
    record: Any, original: Callable[[Any], Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """FastStream's parser decodes every header value as UTF-8 and raises on anything else,
    before a handler sees the record, so the record would go unanswered. Let it parse a copy
    without headers; the handler reads every byte from the record as received."""
    stripped = copy.copy(record)  # keeps the consumer FastStream attached to the record
    stripped.headers = []
    message = await original(stripped)
    message.raw_message = record
    return message


async def _body_as_bytes(message: StreamMessage[Any]) -> bytes:
    # The processor parses and validates itself, so undecodable input becomes a rejection.
    return message.body


def _incoming(message: KafkaMessage) -> IncomingMessage:
    record = message.raw_message
    assert not isinstance(record, tuple), "the command subscriber is not a batch subscriber"
    return IncomingMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=tuple((name, value or b"") for name, value in (record.headers or ())),
    )


async def _commit(message: KafkaMessage, incoming: IncomingMessage) -> None:
    """Commit exactly this record's partition. Never `message.ack()`: FastStream's ack is a bare
    commit of every position the consumer has fetched."""
    position = {TopicPartition(incoming.topic, incoming.partition): incoming.offset + 1}
    try:
        await message.consumer.commit(position)  # type: ignore[call-arg]
    except (CommitFailedError, IllegalStateError, KafkaError) as error:
        log.warning(
            "offset commit for %s failed (%s); it will be redelivered and deduplicated",
            incoming.source,
            error,
        )


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or Settings()
    runtime = Runtime(settings)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        graceful_timeout=15.0,
        enable_idempotence=settings.kafka_idempotent_producer,
    )

    async def on_command(message: KafkaMessage) -> None:
        incoming = _incoming(message)
        runtime.consumer.in_flight[incoming.source] = time.monotonic()
        try:
            outcome = await runtime.processor(incoming.topic).process(incoming)
        except ProcessingAbandonedError:
            log.warning("stopping: %s left uncommitted for redelivery", incoming.source)
            return
        finally:
            del runtime.consumer.in_flight[incoming.source]
        await _commit(message, incoming)
        runtime.consumer.processed_total += 1
        log.debug("command %s -> %s", incoming.source, outcome.value)

    # One subscriber per family: FastStream's concurrent manual-commit mode takes one topic each.
    for handler in runtime.handlers:
        commands = handler.family.topics.commands
        broker.subscriber(
            commands,
            group_id=handler.family.consumer_group(settings.consumer_group),
            max_workers=settings.consumer_workers,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            parser=_parse_without_decoding_headers,
            decoder=_body_as_bytes,
            listener=_RebalanceLog(),
            title=commands,
        )(on_command)

    @get
    async def health(scope: Any) -> AsgiResponse:
        healthy, checks = await runtime.health()
        body = json.dumps({"status": "ok" if healthy else "unhealthy", "checks": checks})
        return AsgiResponse(
            body.encode(),
            status_code=200 if healthy else 503,
            headers={"content-type": "application/json"},
        )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    return AsgiFastStream(
        broker,
        asgi_routes=[("/health", health)],
        lifespan=lifespan,
        # Runs before the broker stops, so a handler stuck retrying lets go at once.
        on_shutdown=[runtime.stop_processing],
    )
