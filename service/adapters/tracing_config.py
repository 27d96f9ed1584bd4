"""Whether and how the service exports traces, decided from the standard OpenTelemetry
environment variables
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).

Only what the SDK offers no public function for is read here: whether tracing is on
(OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER) and which OTLP transport to use
(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL). Everything else (endpoints,
headers, timeouts, certificates, compression, batching, sampling, OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES) the SDK and its exporters read themselves.

Pure, and free of OpenTelemetry imports: with tracing off the SDK is never imported.

One deliberate departure from the specification: an unset OTEL_TRACES_EXPORTER means no
tracing, not `otlp`, so that `make run`, the tests and a deployment that never asked for
traces do not try to reach a collector that is not there."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, TypeGuard, get_args

from service.domain.values import frozen
from service.errors import ConfigurationError

if TYPE_CHECKING:
    from service.adapters.tracing import Tracing

log = logging.getLogger(__name__)

TraceExporter = Literal["otlp", "console"]
OtlpProtocol = Literal["http/protobuf", "grpc"]

SDK_DISABLED = "OTEL_SDK_DISABLED"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
RETIRED_SWITCH = "TRACING_ENABLED"
"""The service's own switch before it followed the standard. Set true, it is refused, never
ignored, so that a deployment that still sets it learns that its traces stopped; set false it
asked for nothing, and is only warned about (a leftover must not stop a rollout)."""

DEFAULT_OTLP_PROTOCOL: OtlpProtocol = "http/protobuf"
"""The specification's recommended default (the Python SDK's own is grpc), and what the service
has always sent."""


@frozen
class TracingConfig:
    exporters: tuple[TraceExporter, ...]
    """At least one; in the order OTEL_TRACES_EXPORTER names them."""
    otlp_protocol: OtlpProtocol = DEFAULT_OTLP_PROTOCOL
    """How an `otlp` exporter sends (unused without one)."""


def tracing_config(environ: Mapping[str, str]) -> TracingConfig | None:
    """The tracing these environment variables ask for, or None for none. Raises
    ConfigurationError for values the service cannot honour, and for TRACING_ENABLED."""
    retired = environ.get(RETIRED_SWITCH)
    if retired is not None and retired.strip().lower() in ("", "false", "0", "no", "off"):
        log.warning(
            "%s is no longer read; remove it (tracing follows OTEL_* variables)", RETIRED_SWITCH
        )
    elif retired is not None:
        raise ConfigurationError(
            f"{RETIRED_SWITCH} is no longer read: tracing follows the standard OpenTelemetry"
            f" variables. Set {TRACES_EXPORTER}=otlp (with OTEL_EXPORTER_OTLP_ENDPOINT, and"
            f" {PROTOCOL} for grpc) to export traces, or leave it unset or `none` not to;"
            f" {SDK_DISABLED}=true turns them off whatever else is set. Remove {RETIRED_SWITCH}"
        )
    # As the SDK reads it: only "true" disables, any other value is ignored.
    if environ.get(SDK_DISABLED, "").strip().lower() == "true":
        return None
    exporters = _exporters(environ.get(TRACES_EXPORTER, ""))
    if not exporters:
        return None
    if "otlp" not in exporters:
        return TracingConfig(exporters)
    return TracingConfig(exporters, _otlp_protocol(environ))


def _exporters(value: str) -> tuple[TraceExporter, ...]:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    if not names or names == ["none"]:
        return ()
    exporters = [name for name in names if _is_exporter(name)]
    if len(exporters) < len(names):  # an unknown name, or `none` beside an exporter
        raise ConfigurationError(
            f"{TRACES_EXPORTER}={value!r}: the service exports traces with"
            f" {' or '.join(get_args(TraceExporter))} (comma-separated for both), or none"
        )
    return tuple(dict.fromkeys(exporters))


def _is_exporter(name: str) -> TypeGuard[TraceExporter]:
    return name in get_args(TraceExporter)


def _otlp_protocol(environ: Mapping[str, str]) -> OtlpProtocol:
    # The traces-specific variable wins; an empty one counts as unset, as the SDK reads it.
    for variable in (TRACES_PROTOCOL, PROTOCOL):
        value = environ.get(variable, "").strip()
        if not value:
            continue
        if _is_protocol(value):
            return value
        why = (
            "the OpenTelemetry Python SDK has no OTLP/JSON exporter"
            if value == "http/json"
            else "not an OTLP protocol"
        )
        raise ConfigurationError(
            f"{variable}={value!r}: {why}; use {' or '.join(get_args(OtlpProtocol))}"
        )
    return DEFAULT_OTLP_PROTOCOL


def _is_protocol(value: str) -> TypeGuard[OtlpProtocol]:
    return value in get_args(OtlpProtocol)


def tracing_from(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The service's tracing as the standard OTEL_* variables of `environ` (default: the
    process's) configure it, else None (and OpenTelemetry not imported). Not Settings fields:
    the SDK and its exporters read the same variables from the process's environment, and one
    source cannot disagree with itself. Raises ConfigurationError for values it cannot honour
    and for the retired TRACING_ENABLED."""
    config = tracing_config(os.environ if environ is None else environ)
    if config is None:
        return None
    from service.adapters.tracing import Tracing

    return Tracing.from_config(config)
