"""What the deployment files (deploy/kubernetes, compose.yaml) are checked against: the
service's own settings and image, read from the code and the Dockerfile rather than restated in
each test."""

from __future__ import annotations

import shlex
from pathlib import Path

from service.settings import Settings

REPO = Path(__file__).parents[1]


TRACING_VARIABLE_PREFIXES = (
    "OTEL_SDK_",
    "OTEL_SERVICE_",
    "OTEL_RESOURCE_",
    "OTEL_TRACES_",
    "OTEL_BSP_",
    "OTEL_SPAN_",
    "OTEL_ATTRIBUTE_",
    "OTEL_LINK_",
    "OTEL_EVENT_",
    "OTEL_EXPORTER_OTLP_",
)
"""The standard variables of traces and their export, of those OpenTelemetry's API and SDK
define (they also define those of metrics and logs, which the service does not export)."""


def settings_variables() -> set[str]:
    """Every environment variable the service reads: Settings has no prefix and no aliases, so
    each field's name, in capitals; and for tracing, the standard OTEL_* variables, which the
    OpenTelemetry SDK reads itself (service/adapters/tracing_config.py)."""
    from opentelemetry import environment_variables as api
    from opentelemetry.sdk import environment_variables as sdk

    tracing = {
        name
        for name in dir(api) + dir(sdk)
        if name.startswith(TRACING_VARIABLE_PREFIXES)
        and "_METRICS_" not in name
        and "_LOGS_" not in name
    }
    return {name.upper() for name in Settings.model_fields} | tracing


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set in the image (what a container runs
    with unless its deployment overrides them)."""
    # A backslash at a line's end continues the instruction on the next line.
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                found[name] = value
    return found
