"""The FastStream application: consumes commands; commits offsets after decisions commit."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import CONTENT_TYPE_LATEST

from service.app.incoming import IncomingMessage
from service.entrypoints.heap import settle_after_start
from service.entrypoints.metrics import ServiceMetrics
from service.entrypoints.runtime import ConsumerStatus, Runtime
from service.errors import ProcessingAbandonedError
from service.settings import Settings

if TYPE_CHECKING:
    from service.adapters.tracing import Tracing

log = logging.getLogger(__name__)
# FastStream's own default loggers carry handlers of their own; through this one its lines
# reach the root handler like every other, in the configured format.
FASTSTREAM_LOG = logging.getLogger("service.faststream")

# How long a rebalance waits for the batch in flight to commit before giving its partitions up.
REVOKE_WAIT_SECONDS = 10.0


class _FinishBatchBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka awaits this before it gives partitions away: the batch in flight finishes and
    commits its offsets first, so the next owner does not decide it again (it would only be
    absorbed by the inbox, but would cost a redelivery). It also keeps the family's partitions
    for readiness."""

    def __init__(
        self, status: ConsumerStatus, family: str, metrics: ServiceMetrics | None = None
    ) -> None:
        self._status = status
        self._family = family
        self._metrics = metrics

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Not for ever: a batch retrying through a database outage must not stall the group;
        # after the wait it is redelivered to the next owner and absorbed by the inbox.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._status.in_flight_lock.acquire(), REVOKE_WAIT_SECONDS)
            self._status.in_flight_lock.release()
        owned = self._status.assigned.setdefault(self._family, set())
        owned -= {(tp.topic, tp.partition) for tp in revoked}
        self._status.joined.discard(self._family)  # a rebalance: rejoining
        if self._metrics is not None:
            for tp in revoked:
                self._metrics.forget_lag(tp.topic, tp.partition)
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Called after every completed join, with no partitions too: an idle member is joined.
        owned = self._status.assigned.setdefault(self._family, set())
        owned |= {(tp.topic, tp.partition) for tp in assigned}
        self._status.joined.add(self._family)
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


def _without_headers(record: Any) -> Any:
    if not record.headers:
        return record
    stripped = copy.copy(record)
    stripped.headers = []
    return stripped


async def _parse_batch_without_decoding_headers(
    records: tuple[Any, ...], original: Callable[[Any], Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """FastStream's parser decodes every header value as UTF-8 and raises on anything else,
    before a handler sees the batch, so its records would go unanswered. Let it parse copies
    without headers; the handler reads every byte from the records as received."""
    message = await original(tuple(_without_headers(record) for record in records))
    message.raw_message = records
    return message


async def _bodies_as_bytes(message: StreamMessage[Any]) -> Any:
    # The processor parses and validates itself, so undecodable input becomes a rejection.
    return message.body


def _incoming(record: Any) -> IncomingMessage:
    return IncomingMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=tuple((name, value or b"") for name, value in (record.headers or ())),
    )


def _positions(batch: list[IncomingMessage]) -> dict[TopicPartition, int]:
    """Each partition of the batch at its last offset + 1."""
    last: dict[tuple[str, int], int] = {}
    for message in batch:  # in offset order per partition; a TopicPartition per partition only
        last[message.topic, message.partition] = message.offset
    return {
        TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()
    }


async def _commit(
    consumer: Any, positions: dict[TopicPartition, int], tracing: Tracing | None
) -> None:
    """Commit each partition of the batch once. Never `message.ack()`: FastStream's ack is a
    bare commit of every position the consumer has fetched."""
    try:
        await consumer.commit(positions)
    except (CommitFailedError, IllegalStateError, KafkaError) as error:
        if tracing is not None:  # handled, but the commit span still failed
            tracing.failed(error)
        log.warning(
            "offset commit for %s failed (%s); its commands will be redelivered and deduplicated",
            sorted(str(tp) for tp in positions),
            error,
        )


def _record_lag(
    metrics: ServiceMetrics, consumer: Any, positions: dict[TopicPartition, int]
) -> None:
    for tp, position in positions.items():
        end = consumer.highwater(tp)  # as of the last fetch from the partition
        if end is not None:
            metrics.lag(tp.topic, tp.partition, max(0, end - position))


def _traced(
    tracing: Tracing | None, span: Callable[[Tracing], AbstractContextManager[None]]
) -> AbstractContextManager[None]:
    """The span when tracing, else nothing at all."""
    return span(tracing) if tracing is not None else contextlib.nullcontext()


def _json(body: dict[str, Any], ok: bool) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body).encode(),
        status_code=200 if ok else 503,
        headers={"content-type": "application/json"},
    )


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or Settings()
    runtime = Runtime(settings)
    kafka = settings.kafka_connection()
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        security=kafka.security(),
        # FastStream takes one id for all its clients, so the families' consumers share it;
        # their groups (`<group>.<family>`) tell them apart in the broker's group logs.
        client_id=kafka.client_id_for("consumer"),
        **kafka.oauth_options(),
        graceful_timeout=15.0,
        enable_idempotence=settings.kafka_idempotent_producer,
        # Per-batch "Received"/"Processed" lines are debugging detail, not operations.
        log_level=logging.DEBUG,
        logger=FASTSTREAM_LOG,
    )

    # Per commands topic, for the spans of its batches.
    consumer_groups = {
        family.topics.commands: family.consumer_group(settings.consumer_group)
        for family in runtime.families
    }

    async def on_commands(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple), "the command subscriber is a batch subscriber"
        if not records:
            return
        batch = [_incoming(record) for record in records]
        tracing = runtime.tracing
        group = consumer_groups[batch[0].topic]
        async with runtime.consumer.deciding(batch[0].source):
            with _traced(tracing, lambda t: t.processing(group, batch)):
                try:
                    with _traced(tracing, lambda t: t.step("decide")):
                        await runtime.processor(batch[0].topic).process_batch(batch)
                except ProcessingAbandonedError:
                    log.warning("stopping: %d commands left uncommitted for redelivery", len(batch))
                    return
                positions = _positions(batch)
                with _traced(tracing, lambda t: t.settling(group, batch)):
                    await _commit(message.consumer, positions, tracing)
        runtime.consumer.processed_total += len(batch)
        if runtime.metrics is not None:
            _record_lag(runtime.metrics, message.consumer, positions)

    # One batch subscriber per family: a batch is decided in one transaction.
    for family in runtime.families:
        commands = family.topics.commands
        broker.subscriber(
            commands,
            group_id=consumer_groups[commands],
            batch=True,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_wait_ms,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_session_timeout_ms // 4,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            parser=_parse_batch_without_decoding_headers,
            decoder=_bodies_as_bytes,
            listener=_FinishBatchBeforeRevoke(runtime.consumer, family.name, runtime.metrics),
            title=commands,
        )(on_commands)

    @get
    async def health(scope: Any) -> AsgiResponse:
        healthy, checks = await runtime.health()
        return _json({"status": "ok" if healthy else "unhealthy", "checks": checks}, healthy)

    @get
    async def live(scope: Any) -> AsgiResponse:
        # Answering at all shows the event loop runs; everything else is readiness's concern,
        # so an outage of a dependency never gets the process restarted.
        return _json({"status": "alive"}, True)

    @get
    async def ready(scope: Any) -> AsgiResponse:
        reasons = await runtime.readiness()
        return _json(
            {"status": "not_ready" if reasons else "ready", "reasons": reasons}, not reasons
        )

    @get
    async def metrics(scope: Any) -> AsgiResponse:
        if runtime.metrics is None:
            return AsgiResponse(b"metrics are off (METRICS_ENABLED=false)\n", status_code=404)
        with contextlib.suppress(Exception):  # the database's gauges keep their last value
            await runtime.outbox_backlog()
        return AsgiResponse(
            runtime.metrics.render(), status_code=200, headers={"content-type": CONTENT_TYPE_LATEST}
        )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await runtime.start()
        # Before the broker starts its consumers, so that no batch (a backlog is read at once)
        # is decided under CPython's defaults: `after_startup` hooks run once they have started,
        # a sync one in a worker thread beside the first batches.
        settle_after_start()
        try:
            yield
        finally:
            await runtime.stop()

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health", health),
            ("/health/live", live),
            ("/health/ready", ready),
            ("/metrics", metrics),
        ],
        lifespan=lifespan,
        logger=FASTSTREAM_LOG,
        # Runs before the broker stops, so a handler stuck retrying lets go at once.
        on_shutdown=[runtime.stop_processing],
    )
