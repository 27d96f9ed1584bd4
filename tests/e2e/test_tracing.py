"""A producer's trace reaches whoever consumes the outcome: the W3C trace context sent with a
command comes back on its event, and with TRACING_ENABLED the service's spans join that trace
(exported over OTLP/HTTP to a collector standing in for a real one)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
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


class _Collector(BaseHTTPRequestHandler):
    spans: ClassVar[list[Span]] = []

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                type(self).spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@contextlib.contextmanager
def otlp_collector() -> Iterator[str]:
    _Collector.spans = []
    server = HTTPServer(("127.0.0.1", free_port()), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces"
    finally:
        server.shutdown()


async def test_with_tracing_the_services_spans_join_the_producers_trace(
    settings: Settings, probe: WireProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_collector() as endpoint:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        service = ServiceProcess(
            settings.model_copy(update={"tracing_enabled": True}), tmp_path / "service.log"
        )
        service.start()
        try:
            command = create("PO-T2")
            await probe.send_raw(
                b"PO-T2", json.dumps(command).encode(), [("traceparent", TRACEPARENT)]
            )
            event = await probe.outcome(command["command_id"], timeout=60)

            def exported(name: str) -> list[Span]:
                return [s for s in _Collector.spans if s.name.startswith(name)]

            await eventually(
                lambda: bool(exported("publish")) and bool(exported("process")),
                timeout=20,
                what="spans exported",
            )
        finally:
            service.stop()
    # The event continues the producer's trace, from the relay's publish span.
    assert trace_id_of(event.headers["traceparent"]) == TRACE_ID
    [publish] = [
        s for s in exported(f"publish {probe.topics.events}") if s.trace_id.hex() == TRACE_ID
    ]
    assert publish.parent_span_id.hex() == PRODUCER_SPAN_ID
    assert event.headers["traceparent"].decode().split("-")[2] == publish.span_id.hex()
    # The batch that decided it is linked to the command's trace, with its steps beneath it.
    [batch] = [
        s
        for s in exported(f"process {probe.topics.commands}")
        if any(link.trace_id.hex() == TRACE_ID for link in s.links)
    ]
    steps = {s.name for s in _Collector.spans if s.parent_span_id == batch.span_id}
    assert steps == {"decide", "commit offsets"}
