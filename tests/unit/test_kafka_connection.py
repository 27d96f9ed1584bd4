"""Kafka connection settings reach the clients' options whole, and secrets stay secret."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.adapters.kafka_connection import KafkaConnection
from service.entrypoints.relay_process import relay_environment
from service.errors import ConfigurationError
from service.settings import Settings

PASSWORD = "s3cret-Pa55word"


def test_plaintext_needs_nothing_but_the_brokers() -> None:
    options = Settings(kafka_bootstrap_servers="k1:9092,k2:9092").kafka_connection()
    assert options.client_options() == {"bootstrap_servers": "k1:9092,k2:9092"}
    assert options.security() is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_with_a_password_file(tmp_path: Path, mechanism: str) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    settings = Settings(
        kafka_bootstrap_servers="broker:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="order-service",
        kafka_sasl_password_file=secret,
    )
    options = settings.kafka_connection().client_options()
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "broker:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "order-service",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_sasl_plaintext_has_no_tls() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr(PASSWORD),
    )
    options = settings.kafka_connection().client_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["ssl_context"] is None


def test_sasl_without_credentials_is_refused_naming_the_settings() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_USERNAME"):
        settings.kafka_connection().client_options()


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    connection = KafkaConnection(
        "broker:9093", security_protocol="SSL", ssl_cert_file=tmp_path / "client.pem"
    )
    with pytest.raises(ConfigurationError, match="KAFKA_SSL_KEY_FILE"):
        connection.ssl_context()


def test_a_missing_password_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password_file=tmp_path / "absent",
    )
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_PASSWORD_FILE"):
        settings.kafka_connection()


def test_secrets_never_appear_in_representations() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_key_password=SecretStr(PASSWORD),
    )
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in repr(settings.kafka_connection())


def test_the_relay_child_gets_the_kafka_secrets_but_never_the_master_key() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr(PASSWORD),
        master_key=SecretStr("bWFzdGVy"),
    )
    env = relay_environment(settings)
    assert env["KAFKA_SASL_PASSWORD"] == PASSWORD
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "MASTER_KEY" not in env
