"""The service's spans as OpenTelemetry's messaging conventions for Kafka name them, recorded in
memory: `process <topic>` linked to each command's trace, `commit <topic>` as a settle operation,
`send <topic>` continuing the trace its outcome carries and ended by the broker's answer, failures
with ERROR status, the exception and error.type; and the service's name and exporters as the
standard variables set them. (tests/e2e/test_tracing.py sees the same spans exported by the
running service.)"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service.adapters.tracing import DEFAULT_SERVICE_NAME, Tracing
from service.adapters.tracing_config import TracingConfig
from service.app.incoming import IncomingMessage
from service.errors import ConfigurationError

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PRODUCER_SPAN_ID}-01".encode()


class RecordMetadata(NamedTuple):
    """What aiokafka's send future resolves to, as far as the span reads it."""

    partition: int
    offset: int


class Recorded:
    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self._exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.spans() if s.name == name]
        return span


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracing = Tracing([SimpleSpanProcessor(exporter)])
    try:
        yield Recorded(tracing, exporter)
    finally:
        tracing.shutdown()


def message(
    partition: int, offset: int, headers: tuple[tuple[str, bytes], ...] = ()
) -> IncomingMessage:
    return IncomingMessage(
        topic="t.commands",
        partition=partition,
        offset=offset,
        timestamp_ms=0,
        key=b"PO-1",
        value=b"{}",
        headers=headers,
    )


def failure(span: ReadableSpan, error_type: str) -> None:
    """Failed with this error's class, and nothing of its text (it may hold personal data)."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == error_type
    assert span.attributes is not None
    assert span.attributes["error.type"] == error_type
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {"exception.type": error_type}


def test_a_batch_is_processed_linked_to_its_commands_and_settled_beneath(
    recorded: Recorded,
) -> None:
    tracing = recorded.tracing
    batch = [message(1, 7, (("traceparent", TRACEPARENT),)), message(1, 8)]
    with tracing.processing("group.purchase-orders", batch):
        with tracing.step("decide"):
            pass
        with tracing.settling("group.purchase-orders", batch):
            pass
    process = recorded.one("process t.commands")
    assert process.kind is SpanKind.CONSUMER
    assert dict(process.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "t.commands",
        "messaging.consumer.group.name": "group.purchase-orders",
        "messaging.batch.message_count": 2,
        "messaging.destination.partition.id": "1",
    }
    assert [format(link.context.trace_id, "032x") for link in process.links] == [TRACE_ID]
    settle = recorded.one("commit t.commands")
    assert settle.kind is SpanKind.CLIENT
    assert settle.attributes is not None
    assert settle.attributes["messaging.operation.type"] == "settle"
    assert settle.attributes["messaging.operation.name"] == "commit"
    assert settle.attributes["messaging.consumer.group.name"] == "group.purchase-orders"
    decide = recorded.one("decide")
    for child in (decide, settle):
        assert child.parent is not None
        assert child.parent.span_id == process.context.span_id
    assert all(s.status.status_code is StatusCode.UNSET for s in recorded.spans())


def test_a_batch_over_several_partitions_names_none(recorded: Recorded) -> None:
    with recorded.tracing.processing("g", [message(0, 1), message(2, 1)]):
        pass
    assert "messaging.destination.partition.id" not in (
        recorded.one("process t.commands").attributes or {}
    )


def test_an_error_out_of_a_span_fails_it_and_goes_on(recorded: Recorded) -> None:
    with (
        pytest.raises(LookupError),
        recorded.tracing.processing("g", [message(0, 1)]),
        recorded.tracing.step("decide"),
    ):
        raise LookupError("no such document")
    failure(recorded.one("decide"), "LookupError")
    failure(recorded.one("process t.commands"), "LookupError")


def test_a_commit_that_failed_though_handled_fails_its_span(recorded: Recorded) -> None:
    with recorded.tracing.settling("g", [message(0, 1)]):
        recorded.tracing.failed(TimeoutError("commit timed out"))
    failure(recorded.one("commit t.commands"), "TimeoutError")


async def test_a_send_continues_the_outcomes_trace_and_ends_with_where_the_broker_put_it(
    recorded: Recorded,
) -> None:
    span, headers = recorded.tracing.sending(
        "t.events", [("ce_id", b"1"), ("traceparent", TRACEPARENT)]
    )
    delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    Tracing.sent(span, delivery)
    assert recorded.spans() == []  # open until the broker answers
    delivery.set_result(RecordMetadata(partition=2, offset=41))
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    send = recorded.one("send t.events")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None
    assert format(send.parent.span_id, "016x") == PRODUCER_SPAN_ID
    assert format(send.context.trace_id, "032x") == TRACE_ID
    assert dict(send.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "t.events",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
    }
    assert send.status.status_code is StatusCode.UNSET
    # The message goes with this span's context in place of the one it came with.
    traceparent = dict(headers)["traceparent"].decode()
    assert traceparent == f"00-{TRACE_ID}-{format(send.context.span_id, '016x')}-01"
    assert [name for name, _ in headers].count("traceparent") == 1
    assert dict(headers)["ce_id"] == b"1"


async def test_a_send_the_broker_refused_ends_failed(recorded: Recorded) -> None:
    class NotEnoughReplicasError(Exception):
        pass

    span, _ = recorded.tracing.sending("t.events", [])
    delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    Tracing.sent(span, delivery)
    delivery.set_exception(NotEnoughReplicasError("not enough replicas"))
    await asyncio.sleep(0)
    send = recorded.one("send t.events")
    failure(send, "test_a_send_the_broker_refused_ends_failed.<locals>.NotEnoughReplicasError")
    assert "messaging.destination.partition.id" not in (send.attributes or {})
    with pytest.raises(NotEnoughReplicasError):  # the caller still sees the error
        await delivery


async def test_a_send_cut_short_by_a_stopping_producer_ends_failed(recorded: Recorded) -> None:
    span, _ = recorded.tracing.sending("t.events", [])
    delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    Tracing.sent(span, delivery)
    delivery.cancel()
    await asyncio.sleep(0)
    failure(recorded.one("send t.events"), "CancelledError")


def test_a_message_the_producer_refused_before_sending_ends_failed(recorded: Recorded) -> None:
    span, _ = recorded.tracing.sending("t.events", [])
    Tracing.not_sent(span, ValueError("too large"))
    failure(recorded.one("send t.events"), "ValueError")


def test_a_tombstone_is_said(recorded: Recorded) -> None:
    span, _ = recorded.tracing.sending("t.state", [], tombstone=True)
    span.end()
    attributes = recorded.one("send t.state").attributes or {}
    assert "messaging.kafka.message.key" not in attributes
    assert attributes["messaging.kafka.message.tombstone"] is True


def test_database_calls_are_instrumented_until_shutdown() -> None:
    tracing = Tracing([SimpleSpanProcessor(InMemorySpanExporter())])
    # The one instance, shared process-wide (the package has no type annotations).
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    try:
        # Without parameters: tests/integration/test_database_spans.py (constructing the
        # singleton again here would reset what it was instrumented with).
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        tracing.shutdown()
    assert not instrumentor.is_instrumented_by_opentelemetry


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({}, DEFAULT_SERVICE_NAME),
        ({"OTEL_SERVICE_NAME": "orders-eu"}, "orders-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=orders-us,team=x"}, "orders-us"),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=orders-us", "OTEL_SERVICE_NAME": "a"},
            "a",
        ),
    ],
)
def test_the_service_name_is_the_standard_variables_else_the_services_own(
    environ: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    exporter = InMemorySpanExporter()
    tracing = Tracing([SimpleSpanProcessor(exporter)])
    try:
        with tracing.step("decide"):
            pass
    finally:
        tracing.shutdown()
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == name


@pytest.mark.parametrize(
    ("config", "exporters"),
    [
        (TracingConfig(("otlp",)), [OTLPSpanExporter]),
        (TracingConfig(("otlp",), "grpc"), [GrpcSpanExporter]),
        (TracingConfig(("console", "otlp")), [ConsoleSpanExporter, OTLPSpanExporter]),
    ],
)
def test_each_exporter_named_gets_a_batch_processor(
    config: TracingConfig, exporters: list[type[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[SpanProcessor] = []

    def keep(self: Tracing, processors: Sequence[SpanProcessor]) -> None:
        made.extend(processors)

    monkeypatch.setattr(Tracing, "__init__", keep)
    Tracing.from_config(config)
    assert all(isinstance(processor, BatchSpanProcessor) for processor in made)
    assert [type(processor.span_exporter) for processor in made] == exporters  # type: ignore[attr-defined]
    for processor in made:
        processor.shutdown()


def test_grpc_without_its_exporter_package_is_refused_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry makes the import fail as an absent package does.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with pytest.raises(
        ConfigurationError,
        match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs",
    ):
        Tracing.from_config(TracingConfig(("otlp",), "grpc"))
