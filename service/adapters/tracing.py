"""OpenTelemetry traces of the service, when the standard environment variables ask for them
(service/adapters/tracing_config.py): a span per consumed batch (linked to the trace of each
command in it, as OpenTelemetry's messaging conventions do for batches), its decision with the
database calls beneath it, its offset commit, and a span per published outcome, continuing the
trace of the command that caused it.

Spans follow the messaging semantic conventions for Kafka: `process <topic>` (CONSUMER),
`commit <topic>` (CLIENT, a settle operation) and `send <topic>` (PRODUCER). Database spans
come from opentelemetry-instrumentation-asyncpg, without query parameters: personal data
travels in parameters, never in query text.

Not imported when tracing is off. The W3C trace context of a command reaches its outcomes
either way (service.app.trace_context.with_trace_context)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_TOMBSTONE,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingOperationTypeValues,
    MessagingSystemValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_TYPE
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from service.adapters.tracing_config import (
    PROTOCOL,
    TRACES_PROTOCOL,
    OtlpProtocol,
    TraceExporter,
    TracingConfig,
)
from service.errors import ConfigurationError, ProcessingAbandonedError

if TYPE_CHECKING:
    from service.app.incoming import IncomingMessage

Headers = Sequence[tuple[str, bytes]]
Attributes = dict[str, AttributeValue]

DEFAULT_SERVICE_NAME = "order-lifecycle-service"
"""The traces' service.name unless OTEL_SERVICE_NAME (or service.name in
OTEL_RESOURCE_ATTRIBUTES) says otherwise."""
INSTRUMENTATION_SCOPE = "order-lifecycle-service"

_PROPAGATOR = TraceContextTextMapPropagator()
_KAFKA = MessagingSystemValues.KAFKA.value


def _context_of(headers: Headers) -> Context | None:
    carrier = {
        name: value.decode("ascii", "replace")
        for name, value in headers
        if name in _PROPAGATOR.fields
    }
    return _PROPAGATOR.extract(carrier) if carrier else None


def _exporter(name: TraceExporter, otlp_protocol: OtlpProtocol) -> SpanExporter:
    """Each exporter reads its own OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout,
    certificates, compression): nothing is passed to it here."""
    if name == "console":
        return ConsoleSpanExporter()
    if otlp_protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as error:
            raise ConfigurationError(
                f"{TRACES_PROTOCOL} or {PROTOCOL}=grpc needs the package"
                f" opentelemetry-exporter-otlp-proto-grpc ({error}); use http/protobuf"
            ) from error
        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource() -> Resource:
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, but lets the
    # attributes given to it win over them; merging the environment's again puts them back on
    # top, so the default name applies only when neither names the service.
    return Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME}).merge(
        OTELResourceDetector().detect()
    )


def _failed(span: Span, error: BaseException) -> None:
    """The span's operation failed: ERROR status and the exception's class as error.type (low
    cardinality, as the conventions ask). Not its message nor its stack trace: a database
    error's DETAIL repeats the row it refused, a validation error the value it refused, and
    traces go where personal data must not (the log has what an operator needs)."""
    name = type(error).__qualname__
    span.add_event("exception", {EXCEPTION_TYPE: name})
    span.set_status(Status(StatusCode.ERROR, name))
    span.set_attribute(ERROR_TYPE, name)


class _NoExceptionText(TracerProvider):
    """The database instrumentation's tracer provider, whose spans never record an
    exception's text (the SDK records it by default): see `_failed`. The instrumentation still
    marks a failed call's span ERROR, with its error.type."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _QuietTracer(super().get_tracer(*args, **kwargs))


class _QuietTracer(Tracer):
    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._tracer.start_span(*args, **{**kwargs, **_QUIET})

    # The API declares its own context-manager type; a plain one behaves alike for a `with`.
    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(*args, **{**kwargs, **_QUIET}) as span:
            yield span


_QUIET = {"record_exception": False, "set_status_on_exception": False}


def _batch(
    operation: MessagingOperationTypeValues,
    name: str,
    consumer_group: str,
    batch: Sequence[IncomingMessage],
) -> Attributes:
    """A consumed batch's attributes, as the conventions have them for an operation on it."""
    return {
        MESSAGING_SYSTEM: _KAFKA,
        MESSAGING_OPERATION_TYPE: operation.value,
        MESSAGING_OPERATION_NAME: name,
        MESSAGING_DESTINATION_NAME: batch[0].topic,
        MESSAGING_CONSUMER_GROUP_NAME: consumer_group,
        MESSAGING_BATCH_MESSAGE_COUNT: len(batch),
        **_one_partition({message.partition for message in batch}),
    }


def _one_partition(partitions: set[int]) -> Attributes:
    # Conventions: the partition when the operation is on one; a batch may span several.
    if len(partitions) != 1:
        return {}
    return {MESSAGING_DESTINATION_PARTITION_ID: str(next(iter(partitions)))}


class Tracing:
    """One per process: it instruments asyncpg process-wide until shutdown."""

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        resource = _resource()
        # No sampler given: the SDK takes OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
        self._provider = TracerProvider(resource=resource)
        # Database calls are traced only inside a trace of the service's (a batch's decision):
        # the relay's polls, health checks and key refreshes would otherwise each start a trace
        # of their own, several a second, drowning the ones that matter. It shares the
        # processors, which the main provider alone shuts down (hence no exit hook of its own).
        self._database_provider = _NoExceptionText(
            resource=resource, sampler=ParentBased(root=ALWAYS_OFF), shutdown_on_exit=False
        )
        for processor in processors:
            self._provider.add_span_processor(processor)
            self._database_provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer(INSTRUMENTATION_SCOPE)
        # capture_parameters stays False: statement parameters carry the personal data.
        # (The instrumentation ships without type annotations.)
        self._database = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
        self._database.instrument(tracer_provider=self._database_provider)

    @classmethod
    def from_config(cls, config: TracingConfig) -> Tracing:
        # The SDK's batch processor reads OTEL_BSP_* itself.
        return cls(
            [BatchSpanProcessor(_exporter(name, config.otlp_protocol)) for name in config.exporters]
        )

    @contextmanager
    def _span(
        self, name: str, kind: SpanKind, attributes: Attributes, links: Sequence[Link] = ()
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name,
            kind=kind,
            attributes=attributes,
            links=links,
            # Recorded below, with error.type, which the SDK's own handling leaves out.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except ProcessingAbandonedError:  # a stopping service is no failure
                raise
            except Exception as error:  # not a cancellation either, for the same reason
                _failed(span, error)
                raise

    @contextmanager
    def processing(self, consumer_group: str, batch: Sequence[IncomingMessage]) -> Iterator[None]:
        """A batch of commands received and processed: one span, linked to every command's
        trace."""
        links = []
        for message in batch:
            context = _context_of(message.headers)
            span_context = get_current_span(context).get_span_context() if context else None
            if span_context is not None and span_context.is_valid:
                links.append(Link(span_context))
        attributes = _batch(MessagingOperationTypeValues.PROCESS, "process", consumer_group, batch)
        with self._span(f"process {batch[0].topic}", SpanKind.CONSUMER, attributes, links):
            yield

    @contextmanager
    def settling(self, consumer_group: str, batch: Sequence[IncomingMessage]) -> Iterator[None]:
        """The batch's offsets committed: a settle operation, named as Kafka's conventions
        name an offset commit."""
        attributes = _batch(MessagingOperationTypeValues.SETTLE, "commit", consumer_group, batch)
        with self._span(f"commit {batch[0].topic}", SpanKind.CLIENT, attributes):
            yield

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        with self._span(name, SpanKind.INTERNAL, {}):
            yield

    def failed(self, error: BaseException) -> None:
        """The current span's operation failed, though its caller handles the error."""
        _failed(get_current_span(), error)

    def sending(
        self, topic: str, headers: Headers, *, tombstone: bool = False
    ) -> tuple[Span, list[tuple[str, bytes]]]:
        """Start the span of one outcome's publication, a child of the trace its headers carry,
        and the headers to send it with (its trace context now this span's). Hand it to `sent`
        with the broker's answer to come, or to `not_sent`."""
        attributes: Attributes = {
            MESSAGING_SYSTEM: _KAFKA,
            MESSAGING_OPERATION_TYPE: MessagingOperationTypeValues.SEND.value,
            MESSAGING_OPERATION_NAME: "send",
            MESSAGING_DESTINATION_NAME: topic,
        }
        # No message key: the conventions make it optional, and keys are chosen by senders
        # (a rejection is keyed by the document id a command named, a dead letter of a family
        # without personal data by the key it came with) or name a customer (an erasure's
        # receipt); the trace store is no place for either, and erasure never reaches it.
        if tombstone:
            attributes[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
        span = self._tracer.start_span(
            f"send {topic}",
            context=_context_of(headers),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        kept = [(n, v) for n, v in headers if n not in _PROPAGATOR.fields]
        return span, [*kept, *((n, v.encode("ascii")) for n, v in carrier.items())]

    @staticmethod
    def sent(span: Span, delivery: asyncio.Future[Any]) -> None:
        """End the span when the broker answers: with the partition and offset it took the
        message at, or with the error it refused it with. Whatever the caller does meanwhile
        (it may stop at an earlier failure and never look at this answer), the span tells
        what became of the message."""

        def answered(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                _failed(span, asyncio.CancelledError("the producer stopped before an answer"))
            elif (error := done.exception()) is not None:
                _failed(span, error)
            else:
                metadata = done.result()
                span.set_attribute(MESSAGING_DESTINATION_PARTITION_ID, str(metadata.partition))
                span.set_attribute(MESSAGING_KAFKA_OFFSET, metadata.offset)
            span.end()

        delivery.add_done_callback(answered)

    @staticmethod
    def not_sent(span: Span, error: BaseException) -> None:
        """End the span of a message the producer refused before it reached the broker."""
        _failed(span, error)
        span.end()

    def shutdown(self) -> None:
        """Export what is still buffered, and stop tracing database calls."""
        if self._database.is_instrumented_by_opentelemetry:
            self._database.uninstrument()
        self._provider.shutdown()
