"""The relay's send spans against real Postgres and Kafka, recorded in memory: one per outbox
row, continuing the trace the row carries and ended with where the broker put it; a message the
producer refuses ends its span failed, with the exception and error.type; and the relay's own
database calls (polls, deletes), outside any trace, are not traced."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.adapters.headers import encode_headers
from service.adapters.relay import OutboxRelay
from service.adapters.tracing import Tracing
from tests.support import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PRODUCER_SPAN_ID}-01".encode()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = Tracing([SimpleSpanProcessor(exporter)])
    yield tracing
    tracing.shutdown()


async def insert(conn: asyncpg.Connection, topic: str, key: str, value: bytes) -> None:
    await conn.execute(
        "INSERT INTO outbox (topic, message_key, headers, payload) VALUES ($1, $2, $3, $4)",
        topic,
        key.encode(),
        encode_headers([("traceparent", TRACEPARENT)]),
        value,
    )


def sends(exporter: InMemorySpanExporter, topic: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"send {topic}"]


async def test_a_published_row_is_sent_in_its_trace_and_a_refused_one_fails_its_span(
    database_url: str,
    db: asyncpg.Connection,
    producer: AIOKafkaProducer,
    topic: str,
    tracing: Tracing,
    exporter: InMemorySpanExporter,
) -> None:
    relay = OutboxRelay(database_url, producer, tracing=tracing)
    await insert(db, topic, "K", b"fits")
    assert await relay.publish_pending(db) == 1
    await eventually(lambda: bool(sends(exporter, topic)), what="the send span ended")
    [sent] = sends(exporter, topic)
    assert sent.parent is not None
    assert format(sent.parent.span_id, "016x") == PRODUCER_SPAN_ID
    assert sent.status.status_code is StatusCode.UNSET
    attributes = sent.attributes or {}
    assert "messaging.kafka.message.key" not in attributes  # chosen by senders: left out
    assert attributes["messaging.destination.partition.id"] in {"0", "1", "2"}
    assert attributes["messaging.kafka.offset"] == 0

    # Larger than the producer sends at all: refused before it reaches the broker.
    await insert(db, topic, "K", b"x" * (5 * 1024 * 1024))
    with pytest.raises(MessageSizeTooLargeError):
        await relay.publish_pending(db)
    [_, refused] = sends(exporter, topic)
    assert refused.status.status_code is StatusCode.ERROR
    assert (refused.attributes or {})["error.type"] == "MessageSizeTooLargeError"
    [event] = refused.events
    assert event.name == "exception"
    assert "messaging.destination.partition.id" not in (refused.attributes or {})

    # The relay's queries ran outside any trace: none was recorded.
    scopes = {s.instrumentation_scope for s in exporter.get_finished_spans()}
    assert {scope.name if scope else None for scope in scopes} == {"order-lifecycle-service"}
