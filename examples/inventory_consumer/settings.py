"""The consumer's own configuration, from the environment: only what it uses.

It reads the same variable names as the command service where the two share a thing (the
brokers, the topic prefix, the database), so one environment can run both, but it has no other
tie to the service's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topics import INVENTORY_MOVEMENTS

# What `make run` starts; the defaults match so the example works beside it with no setup.
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/orders"
DEV_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(
        default=DEV_DATABASE_URL,
        # Its own database if given; else the service's, where its tables keep to their schema.
        validation_alias=AliasChoices("inventory_database_url", "database_url"),
        description="Where the stock is kept: INVENTORY_DATABASE_URL, else DATABASE_URL.",
    )
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
    inventory_consumer_group: str = "reference-inventory"
    inventory_dedup_hours: Annotated[float, Field(gt=0)] = Field(
        default=168.0,
        description="How long applied movement ids are remembered; keep it at least as long as"
        " inventory.movements keeps messages.",
    )

    @property
    def movements_topic(self) -> str:
        return f"{self.topic_prefix}{INVENTORY_MOVEMENTS}"

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's consumer."""
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
