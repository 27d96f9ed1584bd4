"""A producer's trace reaches whoever consumes the outcome: the W3C trace context sent with a
command comes back on its event, and with OTEL_TRACES_EXPORTER=otlp the service's spans join
that trace (exported over OTLP/HTTP, the default protocol, to a collector standing in for a real
one), named and attributed as OpenTelemetry's messaging conventions for Kafka say, with the
database calls of each decision beneath it and none of their parameters."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar, NamedTuple

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from service.devstack.processes import free_port
from service.settings import Settings
from tests.support import ServiceProcess, WireProbe, create, eventually, running_service

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PRODUCER_SPAN_ID}-01".encode()


def trace_id_of(traceparent: bytes) -> str:
    return traceparent.decode().split("-")[1]


async def test_the_trace_context_of_a_command_comes_back_on_its_event(
    settings: Settings, probe: WireProbe
) -> None:
    async with running_service(settings):  # tracing off: the context is carried as it came
        command = create("PO-T1")
        await probe.send_raw(
            b"PO-T1",
            json.dumps(command).encode(),
            [("traceparent", TRACEPARENT), ("tracestate", b"vendor=1")],
        )
        event = await probe.outcome(command["command_id"])
    assert event.headers["traceparent"] == TRACEPARENT
    assert event.headers["tracestate"] == b"vendor=1"


class Exported(NamedTuple):
    scope: str
    """The instrumentation scope: the service's, or a library's."""
    span: Span


class _Collector(BaseHTTPRequestHandler):
    exported: ClassVar[list[Exported]] = []

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                type(self).exported.extend(Exported(scope.scope.name, s) for s in scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@contextlib.contextmanager
def otlp_collector() -> Iterator[str]:
    _Collector.exported = []
    server = HTTPServer(("127.0.0.1", free_port()), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces"
    finally:
        server.shutdown()


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(span: Span) -> dict[str, object]:
    return {attribute.key: _value(attribute.value) for attribute in span.attributes}


def spans(name_prefix: str = "") -> list[Span]:
    return [e.span for e in _Collector.exported if e.span.name.startswith(name_prefix)]


def database_spans() -> list[Span]:
    return [e.span for e in _Collector.exported if e.scope == DATABASE_SCOPE]


DATABASE_SCOPE = "opentelemetry.instrumentation.asyncpg"


async def test_with_tracing_the_services_spans_join_the_producers_trace(
    settings: Settings, probe: WireProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_collector() as endpoint:
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        service = ServiceProcess(settings, tmp_path / "service.log")
        service.start()
        try:
            command = create("PO-T2")
            await probe.send_raw(
                b"PO-T2", json.dumps(command).encode(), [("traceparent", TRACEPARENT)]
            )
            event = await probe.outcome(command["command_id"], timeout=60)
            await eventually(
                lambda: bool(spans("send") and spans("process") and database_spans()),
                timeout=20,
                what="spans exported",
            )
        finally:
            service.stop()
    # The event continues the producer's trace, from the relay's send span.
    assert trace_id_of(event.headers["traceparent"]) == TRACE_ID
    events = probe.topics.events
    [send] = [s for s in spans(f"send {events}") if s.trace_id.hex() == TRACE_ID]
    assert send.kind == Span.SpanKind.SPAN_KIND_PRODUCER
    assert send.parent_span_id.hex() == PRODUCER_SPAN_ID
    assert event.headers["traceparent"].decode().split("-")[2] == send.span_id.hex()
    sent = attributes(send)
    partition = sent.pop("messaging.destination.partition.id")
    assert isinstance(partition, str)
    assert partition.isdigit()
    offset = sent.pop("messaging.kafka.offset")
    assert isinstance(offset, int)
    assert sent == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": events,
    }
    assert send.status.code == send.status.STATUS_CODE_UNSET
    # The batch that decided it is linked to the command's trace, with its steps beneath it.
    commands = probe.topics.commands
    [batch] = [
        s
        for s in spans(f"process {commands}")
        if any(link.trace_id.hex() == TRACE_ID for link in s.links)
    ]
    assert batch.kind == Span.SpanKind.SPAN_KIND_CONSUMER
    processed = attributes(batch)
    assert processed["messaging.system"] == "kafka"
    assert processed["messaging.operation.type"] == "process"
    assert processed["messaging.destination.name"] == commands
    group = processed["messaging.consumer.group.name"]
    assert isinstance(group, str)
    assert group.startswith(settings.consumer_group)
    steps = {s.name: s for s in spans() if s.parent_span_id == batch.span_id}
    assert set(steps) == {"decide", f"commit {commands}"}
    settle = steps[f"commit {commands}"]
    assert settle.kind == Span.SpanKind.SPAN_KIND_CLIENT
    settled = attributes(settle)
    assert settled["messaging.operation.type"] == "settle"
    assert settled["messaging.operation.name"] == "commit"
    assert settled["messaging.consumer.group.name"] == group
    # The decision's database calls are beneath it; no call is traced outside a trace of the
    # service's (the relay's polls would be a trace a second), and none records parameters.
    decided = [s for s in database_spans() if s.parent_span_id == steps["decide"].span_id]
    assert decided
    assert all(s.kind == Span.SpanKind.SPAN_KIND_CLIENT for s in decided)
    assert all(attributes(s).get("db.system") == "postgresql" for s in decided)
    assert all(s.parent_span_id for s in database_spans())
    assert not [s for s in database_spans() if any("parameters" in k for k in attributes(s))]
