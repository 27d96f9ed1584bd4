"""Kafka connection settings reach the clients' options whole, every client names itself, and
secrets stay secret."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import LogicSubscriber
from pydantic import SecretStr, ValidationError

from service.adapters.kafka import make_producer
from service.adapters.kafka_connection import ClientRole, KafkaConnection
from service.entrypoints.app import create_app
from service.entrypoints.relay_process import relay_environment
from service.errors import ConfigurationError
from service.settings import Settings

PASSWORD = "s3cret-Pa55word"


def test_plaintext_needs_nothing_but_the_brokers() -> None:
    options = Settings(kafka_bootstrap_servers="k1:9092,k2:9092").kafka_connection()
    assert options.client_options("relay") == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "client_id": "order-lifecycle-service-relay",
    }
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
    options = settings.kafka_connection().client_options("consumer")
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "broker:9093",
        "client_id": "order-lifecycle-service-consumer",
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
    options = settings.kafka_connection().client_options("admin")
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["ssl_context"] is None


def test_sasl_without_credentials_is_refused_naming_the_settings() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_USERNAME"):
        settings.kafka_connection().client_options("cli")


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


def test_every_role_names_its_client_after_the_configured_id() -> None:
    connection = Settings(kafka_client_id="acme-orders").kafka_connection()
    roles: list[ClientRole] = ["consumer", "relay", "admin", "cli"]
    assert [connection.client_options(role)["client_id"] for role in roles] == [
        "acme-orders-consumer",
        "acme-orders-relay",
        "acme-orders-admin",
        "acme-orders-cli",
    ]


@pytest.mark.parametrize("client_id", ["", "has space", "ümlaut", "a/b"])
def test_a_client_id_kafka_would_not_accept_is_refused(client_id: str) -> None:
    with pytest.raises(ValidationError, match="kafka_client_id"):
        Settings(kafka_client_id=client_id)


async def test_the_relay_producer_goes_out_under_the_relay_id() -> None:
    connection = KafkaConnection("unused:9092", client_id="acme-orders")
    producer = make_producer(connection, idempotent=False)
    try:
        # aiokafka keeps the id on its network client, which sends it with every request.
        assert producer.client._client_id == "acme-orders-relay"
    finally:
        await producer.stop()


def test_the_command_consumers_go_out_under_the_consumer_id() -> None:
    settings = Settings(
        kafka_client_id="acme-orders", master_key=SecretStr(base64.b64encode(bytes(32)).decode())
    )
    broker = create_app(settings).broker
    assert isinstance(broker, KafkaBroker)
    subscribers = [s for s in broker.subscribers if isinstance(s, LogicSubscriber)]
    assert len(subscribers) == len(list(broker.subscribers)) >= 2, "one per family"
    # The id FastStream hands to the AIOKafkaConsumer each subscriber builds when it starts.
    assert {subscriber.client_id for subscriber in subscribers} == {"acme-orders-consumer"}


def test_the_relay_child_inherits_the_client_id() -> None:
    env = relay_environment(Settings(kafka_client_id="acme-orders"))
    assert env["KAFKA_CLIENT_ID"] == "acme-orders"


class StaticTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """A provider a deployment could name in KAFKA_SASL_OAUTH_TOKEN_PROVIDER."""

    async def token(self) -> str:
        return "static-token"


def not_a_provider() -> object:
    return object()


def oauth_settings(**fields: object) -> Settings:
    return Settings.model_validate(
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "master_key": SecretStr(base64.b64encode(bytes(32)).decode()),
            **fields,
        }
    )


async def test_oauthbearer_reads_its_token_from_a_file_again_when_it_changes(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    connection = oauth_settings(kafka_sasl_oauth_token_file=token_file).kafka_connection()
    options = connection.client_options("relay")
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    provider = options["sasl_oauth_token_provider"]
    assert await provider.token() == "first-token"
    token_file.write_text("renewed-token-of-another-length\n")
    assert await provider.token() == "renewed-token-of-another-length"
    token_file.write_text("")
    with pytest.raises(ConfigurationError, match="is empty"):
        await provider.token()
    token_file.unlink()
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_OAUTH_TOKEN_FILE"):
        await provider.token()


async def test_oauthbearer_takes_a_provider_of_the_deployments_own() -> None:
    path = f"{__name__}:StaticTokenProvider"
    connection = oauth_settings(kafka_sasl_oauth_token_provider=path).kafka_connection()
    provider = connection.client_options("admin")["sasl_oauth_token_provider"]
    assert await provider.token() == "static-token"
    # The service's consumers get it too: FastStream takes it as a keyword of its own.
    broker = create_app(oauth_settings(kafka_sasl_oauth_token_provider=path)).broker
    assert isinstance(broker, KafkaBroker)
    assert isinstance(broker._connection_kwargs["sasl_oauth_token_provider"], StaticTokenProvider)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "KAFKA_SASL_OAUTH_TOKEN_FILE or KAFKA_SASL_OAUTH_TOKEN_PROVIDER"),
        ({"kafka_sasl_oauth_token_provider": "no-colon"}, "is not 'package.module:factory'"),
        ({"kafka_sasl_oauth_token_provider": "nowhere.at_all:f"}, "could not be loaded"),
        ({"kafka_sasl_oauth_token_provider": f"{__name__}:not_a_provider"}, "not an aiokafka"),
    ],
)
def test_oauthbearer_without_a_usable_token_source_is_refused(
    fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        oauth_settings(**fields).kafka_connection().client_options("consumer")
