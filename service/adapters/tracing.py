"""OpenTelemetry traces of the service, when TRACING_ENABLED: a span per consumed batch (linked
to the trace of each command in it, as OpenTelemetry's messaging conventions do for batches),
its decision and offset commit, and a span per published outcome, continuing the trace of the
command that caused it. Spans go to an OTLP/HTTP collector configured the standard way
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).

Off by default; when off nothing here runs. The W3C trace context of a command reaches its
outcomes either way (service.app.trace_context.with_trace_context)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

Headers = Sequence[tuple[str, bytes]]

_PROPAGATOR = TraceContextTextMapPropagator()


def _context_of(headers: Headers) -> Context | None:
    carrier = {
        name: value.decode("ascii", "replace")
        for name, value in headers
        if name in _PROPAGATOR.fields
    }
    return _PROPAGATOR.extract(carrier) if carrier else None


class Tracing:
    def __init__(self, service_name: str) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("order-lifecycle-service")

    @contextmanager
    def consuming(self, topic: str, headers_of_each: Sequence[Headers]) -> Iterator[None]:
        """A batch of commands received and processed: one span, linked to every command's
        trace."""
        links = []
        for headers in headers_of_each:
            context = _context_of(headers)
            span_context = get_current_span(context).get_span_context() if context else None
            if span_context is not None and span_context.is_valid:
                links.append(Link(span_context))
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(headers_of_each),
        }
        with self._tracer.start_as_current_span(
            f"process {topic}", kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ):
            yield

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        with self._tracer.start_as_current_span(name):
            yield

    def publishing(self, topic: str, headers: Headers) -> tuple[Span, list[tuple[str, bytes]]]:
        """Start the span of one outcome's publication, a child of the trace its headers carry,
        and the headers to send it with (its trace context now this span's). End the span when
        the broker has the message."""
        span = self._tracer.start_span(
            f"publish {topic}",
            context=_context_of(headers),
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        kept = [(n, v) for n, v in headers if n not in _PROPAGATOR.fields]
        return span, [*kept, *((n, v.encode("ascii")) for n, v in carrier.items())]

    def shutdown(self) -> None:
        """Export what is still buffered."""
        self._provider.shutdown()
