"""Configuration from the environment (and nothing else, so every deployment says what it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.crypto import Keyring, MasterKeyring
from service.adapters.kafka_connection import (
    DEFAULT_CLIENT_ID,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)
from service.adapters.oauth_tokens import FileTokenProvider, TokenProvider, provider_from
from service.adapters.topic_plan import (
    FOREVER,
    SHORTEST_RETENTION_HOURS,
    TopicKind,
    TopicSettings,
    default_commands_retention,
    longest_kept,
)
from service.app.auth import AuthMode, TokenVerifier
from service.errors import ConfigurationError

# Where `make run` puts its embedded servers; the CLI defaults match so it works with no setup.
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/orders"
DEV_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = DEV_DATABASE_URL
    kafka_bootstrap_servers: str = DEV_KAFKA_BOOTSTRAP_SERVERS
    topic_prefix: str = Field(default="", description="Prepended to every topic name.")
    topic_partitions: Annotated[int, Field(ge=1)] = Field(
        default=3, description="Partitions of every topic the service creates."
    )
    topic_replication_factor: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Replicas of every topic the service creates. Unset: 3, or as many as the"
        " cluster has brokers where it has fewer (a loud warning then).",
    )
    topic_min_insync_replicas: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="min.insync.replicas of every topic the service creates. Unset: 2 with three"
        " replicas or more, else 1.",
    )
    topic_commands_retention_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = (
        Field(
            default=None,
            description="How long commands topics keep messages (their plaintext, personal data"
            " included). Unset: 24, or less where INBOX_RETENTION_HOURS is short: with the"
            " segment roll (a quarter of it) it must fit in INBOX_RETENTION_HOURS, so that no"
            " redelivery can outlive the memory of a command id.",
        )
    )
    topic_outcomes_retention_hours: Annotated[float, Field(allow_inf_nan=False)] = Field(
        default=7 * 24,
        description="How long events, rejections, previews and movements are kept; -1: for ever.",
    )
    topic_dead_letters_retention_hours: Annotated[float, Field(allow_inf_nan=False)] = Field(
        default=14 * 24,
        description="How long dead-letter topics keep messages; -1: for ever.",
    )
    extra_families: list[str] = Field(
        default=[],
        description="Families to run beside the built-in ones, as a JSON list of"
        " 'package.module:factory' import paths (see the README's 'Adding a family').",
    )
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
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (what managed Kafka services"
        " require).",
    )
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password, e.g. a mounted secret."
    )
    kafka_sasl_oauth_token_file: Path | None = Field(
        default=None,
        description="OAUTHBEARER: a file holding the access token (a projected service-account"
        " token, or one a sidecar refreshes); read again whenever it changes.",
    )
    kafka_sasl_oauth_token_provider: str | None = Field(
        default=None,
        description="OAUTHBEARER: 'package.module:factory' returning an aiokafka"
        " AbstractTokenProvider, for identity providers that need code.",
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) to verify the brokers; default: the system's.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM), for brokers that require one."
    )
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_client_id: str = Field(
        default=DEFAULT_CLIENT_ID,
        # Kafka's legal client-id characters; quotas and JMX names are keyed by it.
        pattern=r"^[A-Za-z0-9._-]+$",
        max_length=200,
        description="Prefix of every Kafka client's id, `<id>-consumer`, `<id>-relay`,"
        " `<id>-admin`, `<id>-cli`, so broker logs and quotas can tell the clients apart.",
    )
    kafka_idempotent_producer: bool = Field(
        default=True,
        description="Turn off only for brokers without InitProducerId (the embedded Tansu build).",
    )
    health_host: str = "127.0.0.1"
    health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_command_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    reply_topic_prefixes: list[str] = Field(
        default=["replies."],
        description="Where a command's `reply_to` header may point (JSON list), under the"
        " deployment's TOPIC_PREFIX; any other reply topic is refused.",
    )
    reply_topics_per_tenant: bool = Field(
        default=True,
        description="A reply topic must name the command's tenant right after its prefix"
        " (`replies.<tenant_id>` or `replies.<tenant_id>_<name>`), so no sender can have the"
        " service write into another tenant's replies.",
    )
    relay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    relay_poll_interval_seconds: Annotated[float, Field(gt=0)] = 1.0
    relay_in_process: bool = Field(
        default=True,
        description="`serve` runs the outbox relay as its child. Set false (or `serve"
        " --no-relay`) when `order-service relay` runs as a deployment of its own.",
    )
    publish_from_memory: bool = Field(
        default=True,
        description="Each instance publishes its outcomes right after their commit, from"
        " memory; the outbox keeps them until the broker has them, and the relay publishes what"
        " an instance could not. False leaves everything to the relay, as before.",
    )
    outbox_sweep_after_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="How old a message an instance meant to publish from memory must be before"
        " the relay publishes it instead (its instance died, or cannot reach the broker). Keep"
        " it above the 25 s an instance may spend on one round, or the relay sends copies of"
        " what the instance is still sending.",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="`serve` applies pending migrations at start. Set false where the service's"
        " database role has no DDL rights: `order-service migrate` (a Job) applies them, and"
        " `serve` refuses to start while any is pending.",
    )
    inbox_retention_hours: Annotated[float, Field(gt=0)] = Field(
        default=7 * 24,
        description="How long a command_id is remembered; keep it at least as long as the"
        " commands topics keep messages, so that no redelivery can outlive it.",
    )
    dead_letter_retention_hours: Annotated[float, Field(gt=0)] = Field(
        default=14 * 24,
        description="How long sealed dead letters of orders stay readable before their key goes.",
    )
    document_cache_mib: Annotated[float, Field(ge=0)] = Field(
        default=8.0,
        description="How much JSON of committed documents kept as JSON (purchase orders) each"
        " instance holds decoded, so that the next command on one reads no snapshot while it"
        " is still at the version and event held; held, 2.3 to 2.8 times as much memory. 0 holds"
        " none.",
    )
    retry_max_backoff_seconds: Annotated[float, Field(gt=0)] = 5.0
    unexpected_failure_attempts: Annotated[int, Field(ge=1)] = 3
    database_pool_size: Annotated[int, Field(ge=2)] = 8
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per line, for log pipelines."
    )
    # Tracing is configured by the standard OTEL_* variables, read where the OpenTelemetry SDK
    # reads them, from the environment itself (tracing_from below).
    auth_mode: AuthMode = Field(
        default=AuthMode.REQUIRED,
        description="off: the envelope's actor is believed; verify: a token, when sent, must be"
        " valid and is who acted; required: no valid token, no decision.",
    )
    auth_keys_file: Path | None = Field(
        default=None,
        description="JWKS file of the keys tokens may be signed with (each with kid and alg);"
        " read again when it changes.",
    )
    auth_issuers: str = Field(default="", description="Trusted `iss` values, comma-separated.")
    auth_audience: str = Field(
        default="order-lifecycle-service", description="The `aud` tokens must name."
    )
    auth_clock_skew_seconds: Annotated[float, Field(ge=0)] = 30.0
    auth_max_token_age_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="How old (by `iat`) a token without a `jti` may be; only keys with"
        " accepts_unbound take such tokens at all.",
    )
    auth_max_token_lifetime_seconds: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=3600.0,
        description="Tokens valid for longer than this (exp minus now) are refused: a token rides"
        " in a record that everyone reading the topic sees.",
    )
    auth_role_claim: str = Field(default="role", description="Claim holding the actor type.")
    auth_tenant_claim: str = Field(default="tenant", description="Claim holding the tenant.")
    auth_allow_claimed_actors: bool = Field(
        default=False,
        description="Let AUTH_MODE off or verify take a command's word for who sent it. `serve`"
        " refuses to start in those modes without it, so nobody runs them by accident;"
        " `order-service dev` sets it.",
    )
    preview_max_per_batch: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=100,
        description="Most dry runs decided per batch; the rest are answered `rate_limited`.",
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

    def kafka_connection(self) -> KafkaConnection:
        """How every Kafka client of the service connects (the consumer, the relay, the topic
        administrator, the CLI)."""
        password = self.kafka_sasl_password
        if password is None and self.kafka_sasl_password_file is not None:
            try:
                text = self.kafka_sasl_password_file.read_text().strip()
            except OSError as error:
                raise ConfigurationError(
                    f"KAFKA_SASL_PASSWORD_FILE {self.kafka_sasl_password_file}: {error.strerror}"
                ) from error
            password = SecretStr(text)
        key_password = self.kafka_ssl_key_password
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=password.get_secret_value() if password is not None else None,
            ssl_ca_file=self.kafka_ssl_ca_file,
            ssl_cert_file=self.kafka_ssl_cert_file,
            ssl_key_file=self.kafka_ssl_key_file,
            ssl_key_password=key_password.get_secret_value() if key_password else None,
            client_id=self.kafka_client_id,
            oauth_token_provider=self._oauth_token_provider(),
        )

    def _oauth_token_provider(self) -> TokenProvider | None:
        if self.kafka_sasl_mechanism != "OAUTHBEARER":
            return None
        if self.kafka_sasl_oauth_token_provider is not None:
            return provider_from(self.kafka_sasl_oauth_token_provider)
        if self.kafka_sasl_oauth_token_file is not None:
            return FileTokenProvider(self.kafka_sasl_oauth_token_file)
        return None

    @model_validator(mode="after")
    def _commands_outlive_no_command_id(self) -> Settings:
        commands = self.topic_commands_retention_hours
        if commands is not None and longest_kept(commands) > self.inbox_retention_hours:
            raise ValueError(
                f"TOPIC_COMMANDS_RETENTION_HOURS={commands:g} keeps a command up to"
                f" {longest_kept(commands):g} hours (its segment rolls after a quarter of it),"
                f" more than INBOX_RETENTION_HOURS={self.inbox_retention_hours:g}: a command still"
                " on its topic after its id is forgotten would be decided again if read again"
            )
        for name in (
            "topic_commands_retention_hours",
            "topic_outcomes_retention_hours",
            "topic_dead_letters_retention_hours",
        ):
            hours = getattr(self, name)
            if hours is not None and hours != FOREVER and hours < SHORTEST_RETENTION_HOURS:
                raise ValueError(
                    f"{name.upper()} must be at least {SHORTEST_RETENTION_HOURS:g} hours"
                    " (a minute), or -1 (for ever)"
                )
        return self

    def topics(self) -> TopicSettings:
        """The topic settings, for the topics the service creates and checks."""
        return TopicSettings(
            partitions=self.topic_partitions,
            replication_factor=self.topic_replication_factor,
            min_insync_replicas=self.topic_min_insync_replicas,
            retention_hours={
                TopicKind.COMMANDS: self.topic_commands_retention_hours
                or default_commands_retention(self.inbox_retention_hours),
                TopicKind.OUTCOMES: self.topic_outcomes_retention_hours,
                TopicKind.DEAD_LETTERS: self.topic_dead_letters_retention_hours,
            },
        )

    @model_validator(mode="after")
    def _token_uses_outlive_tokens(self) -> Settings:
        # A token's use is remembered as long as inbox keys; a token that outlived that record
        # could be used again.
        lifetime = self.auth_max_token_lifetime_seconds + self.auth_clock_skew_seconds
        if self.inbox_retention_hours * 3600 < lifetime:
            raise ValueError(
                "INBOX_RETENTION_HOURS must cover AUTH_MAX_TOKEN_LIFETIME_SECONDS plus"
                " AUTH_CLOCK_SKEW_SECONDS: token uses are remembered that long"
            )
        return self

    def check_auth_mode(self) -> None:
        """Refuse modes that take a command's word for who sent it, unless that was meant."""
        if self.auth_mode.believes_claims and not self.auth_allow_claimed_actors:
            raise ConfigurationError(
                f"AUTH_MODE={self.auth_mode.value} takes commands at their word for who sent"
                " them: anyone who can write to a commands topic can act as anyone. Use"
                " AUTH_MODE=required with AUTH_KEYS_FILE and AUTH_ISSUERS, or set"
                " AUTH_ALLOW_CLAIMED_ACTORS=true if that is what you want"
            )

    def token_verifier(self) -> TokenVerifier | None:
        """The verifier of actor tokens, or None with AUTH_MODE=off."""
        if self.auth_mode is AuthMode.OFF:
            return None
        if self.auth_keys_file is None:
            raise ConfigurationError(f"AUTH_MODE={self.auth_mode.value} needs AUTH_KEYS_FILE")
        from service.adapters.jwt_tokens import JwtVerifier

        return JwtVerifier(
            self.auth_keys_file,
            issuers=[i.strip() for i in self.auth_issuers.split(",") if i.strip()],
            audience=self.auth_audience,
            leeway_seconds=self.auth_clock_skew_seconds,
            max_token_age_seconds=self.auth_max_token_age_seconds,
            max_token_lifetime_seconds=self.auth_max_token_lifetime_seconds,
            role_claim=self.auth_role_claim,
            tenant_claim=self.auth_tenant_claim,
        )

    def load_master_key(self) -> Keyring:
        """The master keyring: MASTER_KEY (one or more base64 keys, comma-separated, the current
        one first), or MASTER_KEY_FILE (one key per line, the current one first), which is read
        again when it changes. Personal data cannot be stored or read without one."""
        if self.master_key is not None:
            return MasterKeyring.from_text(self.master_key.get_secret_value(), "MASTER_KEY")
        if self.master_key_file is not None:
            from service.adapters.master_keys import ReloadingKeyring

            return ReloadingKeyring(self.master_key_file)
        raise ConfigurationError(
            "no master key: set MASTER_KEY_FILE (a file with a base64 32-byte key, e.g."
            " `head -c 32 /dev/urandom | base64 > master.key`) or MASTER_KEY"
        )
