"""How the examples reach Kafka, from the environment: the same variable names as the command
service (brokers, TLS, SASL, topic prefix), so one environment can run both, and no other tie to
the service's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# What `make run` starts; the default matches so the examples work beside it with no setup.
DEV_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


class KafkaClientSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = DEV_KAFKA_BOOTSTRAP_SERVERS
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) for the brokers; default: the system's."
    )
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    topic_prefix: str = ""

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(
                cafile=self.kafka_ssl_ca_file,
                certfile=self.kafka_ssl_cert_file,
                keyfile=self.kafka_ssl_key_file,
            )
        if self.kafka_security_protocol.startswith("SASL"):
            password = self.kafka_sasl_password
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=password.get_secret_value() if password else None,
            )
        return options
