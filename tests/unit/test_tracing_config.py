"""Whether and how the service traces, from the standard OpenTelemetry environment variables:
off unless OTEL_TRACES_EXPORTER names an exporter, OTEL_SDK_DISABLED read as the SDK reads it,
the traces-specific OTLP protocol before the general one, and every value the service cannot
honour (TRACING_ENABLED among them) refused with the variable named."""

from __future__ import annotations

import logging

import pytest

from service.adapters.tracing_config import TracingConfig, tracing_config, tracing_from
from service.errors import ConfigurationError


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": ""},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": " None "},
        # Protocol and endpoint alone ask for nothing: only an exporter turns tracing on.
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_named(environ: dict[str, str]) -> None:
    assert tracing_config(environ) is None
    assert tracing_from(environ) is None


@pytest.mark.parametrize("disabled", ["true", "TRUE", " True "])
def test_otel_sdk_disabled_turns_tracing_off_whatever_else_is_set(disabled: str) -> None:
    environ = {"OTEL_SDK_DISABLED": disabled, "OTEL_TRACES_EXPORTER": "otlp"}
    assert tracing_config(environ) is None


@pytest.mark.parametrize("value", ["false", "1", "yes", ""])
def test_only_true_disables_the_sdk_as_the_sdk_itself_reads_it(value: str) -> None:
    environ = {"OTEL_SDK_DISABLED": value, "OTEL_TRACES_EXPORTER": "otlp"}
    assert tracing_config(environ) == TracingConfig(("otlp",), "http/protobuf")


def test_otlp_sends_over_http_protobuf_unless_told_otherwise() -> None:
    assert tracing_config({"OTEL_TRACES_EXPORTER": "otlp"}) == TracingConfig(
        ("otlp",), "http/protobuf"
    )


def test_several_exporters_are_named_comma_separated_once_each_in_order() -> None:
    config = tracing_config({"OTEL_TRACES_EXPORTER": " Console, otlp ,console"})
    assert config == TracingConfig(("console", "otlp"), "http/protobuf")


@pytest.mark.parametrize(
    ("environ", "protocol"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "grpc"),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            "http/protobuf",
        ),
        # An empty traces-specific value counts as unset, as the SDK reads it.
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": " "},
            "grpc",
        ),
    ],
)
def test_the_traces_protocol_wins_over_the_general_one(
    environ: dict[str, str], protocol: str
) -> None:
    config = tracing_config({"OTEL_TRACES_EXPORTER": "otlp", **environ})
    assert config is not None
    assert config.otlp_protocol == protocol


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "no OTLP/JSON exporter"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "no OTLP/JSON exporter"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "not an OTLP protocol"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC", "not an OTLP protocol"),
    ],
)
def test_a_protocol_the_service_cannot_send_is_refused_naming_its_variable(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{variable}=.*{says}.*http/protobuf or grpc"):
        tracing_config({"OTEL_TRACES_EXPORTER": "otlp", variable: value})


def test_the_protocol_matters_only_to_an_otlp_exporter() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    assert tracing_config(environ) == TracingConfig(("console",))


@pytest.mark.parametrize("value", ["zipkin", "jaeger", "otlp,zipkin", "none,otlp", "otlp_json"])
def test_an_exporter_the_service_does_not_have_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^OTEL_TRACES_EXPORTER=.*otlp or console"):
        tracing_config({"OTEL_TRACES_EXPORTER": value})


@pytest.mark.parametrize(
    "environ",
    [
        {"TRACING_ENABLED": "true"},
        {"TRACING_ENABLED": "1"},
        {"TRACING_ENABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
        {"TRACING_ENABLED": "true", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_the_retired_switch_stops_the_start_and_names_what_replaces_it(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        tracing_from(environ)
    message = str(refused.value)
    assert message.startswith("TRACING_ENABLED is no longer read")
    for replacement in (
        "OTEL_TRACES_EXPORTER=otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SDK_DISABLED=true",
    ):
        assert replacement in message


def test_the_retired_switch_set_false_asked_for_nothing_and_is_only_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert tracing_from({"TRACING_ENABLED": "false"}) is None
    assert "TRACING_ENABLED is no longer read; remove it" in caplog.text
