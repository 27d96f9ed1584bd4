"""Configuration from the environment (and nothing else, so every deployment says what it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.crypto import MasterKey
from service.errors import ConfigurationError

# Where `make run` puts its embedded servers; the CLI defaults match so it works with no setup.
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/orders"
DEV_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = DEV_DATABASE_URL
    kafka_bootstrap_servers: str = DEV_KAFKA_BOOTSTRAP_SERVERS
    topic_prefix: str = Field(default="", description="Prepended to every topic name.")
    topic_partitions: Annotated[int, Field(ge=1)] = 3
    consumer_group: str = "order-lifecycle-service"
    batch_max_records: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="Most commands decided in one transaction."
    )
    batch_wait_ms: Annotated[int, Field(ge=1)] = Field(
        default=5,
        description="How long a poll waits for commands when none are buffered; a batch never"
        " waits to fill up.",
    )
    fetch_max_wait_ms: Annotated[int, Field(ge=0)] = Field(
        default=10,
        description="How long the broker may hold a fetch open. Brokers that do not answer a"
        " waiting fetch when data arrives (the embedded one) add up to this much latency.",
    )
    kafka_session_timeout_ms: Annotated[int, Field(ge=1000)] = Field(
        default=10_000,
        description="Consumer group session timeout. The embedded broker completes a first"
        " join only after half of it, so `order-service dev` and the tests use 2000; Apache"
        " Kafka refuses values below its group.min.session.timeout.ms (6000 by default).",
    )
    kafka_idempotent_producer: bool = Field(
        default=True,
        description="Turn off only for brokers without InitProducerId (the embedded Tansu build).",
    )
    health_host: str = "127.0.0.1"
    health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_command_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    relay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    relay_poll_interval_seconds: Annotated[float, Field(gt=0)] = 1.0
    inbox_retention_hours: Annotated[float, Field(gt=0)] = Field(
        default=7 * 24,
        description="How long a command_id is remembered; keep it at least as long as the"
        " commands topics keep messages, so that no redelivery can outlive it.",
    )
    dead_letter_retention_hours: Annotated[float, Field(gt=0)] = Field(
        default=14 * 24,
        description="How long sealed dead letters of orders stay readable before their key goes.",
    )
    retry_max_backoff_seconds: Annotated[float, Field(gt=0)] = 5.0
    unexpected_failure_attempts: Annotated[int, Field(ge=1)] = 3
    database_pool_size: Annotated[int, Field(ge=2)] = 8
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per line, for log pipelines."
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics on GET /metrics."
    )
    ready_max_batch_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="/health/ready turns red when a batch has been deciding this long (blocked"
        " on a lock, or retrying through an outage).",
    )
    ready_max_outbox_age_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="/health/ready turns red when an outcome has waited this long to be published.",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="File holding the base64 master key that wraps every data key.",
    )
    master_key: SecretStr | None = Field(
        default=None, description="The master key itself (base64), e.g. from a secret store."
    )

    def load_master_key(self) -> MasterKey:
        """The configured master key; personal data cannot be stored or read without one."""
        if self.master_key is not None:
            return MasterKey.from_text(self.master_key.get_secret_value(), "MASTER_KEY")
        if self.master_key_file is not None:
            return MasterKey.from_file(self.master_key_file)
        raise ConfigurationError(
            "no master key: set MASTER_KEY_FILE (a file with a base64 32-byte key, e.g."
            " `head -c 32 /dev/urandom | base64 > master.key`) or MASTER_KEY"
        )
