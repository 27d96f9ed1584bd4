"""How every Kafka client of the service connects: brokers, TLS and SASL, in one place.

The service's consumer (through FastStream), the relay's producer, the topic administrator and
the CLI all take their options from here, so a cluster that needs SASL_SSL is configured once.
FastStream's own mapping from its security objects to aiokafka's options is reused for the
plain aiokafka clients, so the two cannot drift apart.

Every client also names itself: `<KAFKA_CLIENT_ID>-<role>`, so that broker logs, request
metrics and client-id quotas can tell the service's consumer from its relay, its topic
administration and an operator's CLI.
"""

from __future__ import annotations

import ssl
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from service.adapters.oauth_tokens import TokenProvider
from service.domain.values import frozen
from service.errors import ConfigurationError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
ClientRole = Literal["consumer", "publisher", "relay", "admin", "cli"]
"""consumer: the service's command consumers (FastStream gives its consumers, producer and
admin client one id); publisher: the producer that publishes outcomes from memory after their
commit; relay: the outbox relay's producer; admin: topic creation and the reply
topic directory; cli: clients an operator's command opens (send, tail, dead letters)."""

DEFAULT_CLIENT_ID = "order-lifecycle-service"

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


@frozen
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_file: Path | None = None
    """None: the system's trusted CAs."""
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    client_id: str = DEFAULT_CLIENT_ID
    """The prefix of every client's id; each client adds its role (client_id_for)."""
    oauth_token_provider: TokenProvider | None = field(default=None, repr=False, compare=False)
    """SASL/OAUTHBEARER: the aiokafka AbstractTokenProvider that gives the access token."""

    def client_id_for(self, role: ClientRole) -> str:
        return f"{self.client_id}-{role}"

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (server verified by hostname and CA; a client certificate if
        configured), or None without TLS."""
        if not self.uses_tls:
            return None
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ConfigurationError(
                "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (a client certificate"
                " and its key)"
            )
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_ca_file,
            certfile=self.ssl_cert_file,
            keyfile=self.ssl_key_file,
            password=self.ssl_key_password,
        )
        return context

    def security(self) -> BaseSecurity | None:
        """For FastStream's KafkaBroker."""
        context = self.ssl_context()
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context) if self.uses_tls else None
        if self.sasl_mechanism == "OAUTHBEARER":
            if self.oauth_token_provider is None:
                raise ConfigurationError(
                    "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_FILE or"
                    " KAFKA_SASL_OAUTH_TOKEN_PROVIDER"
                )
            return SASLOAuthBearer(ssl_context=context, use_ssl=self.uses_tls)
        if not self.sasl_username or self.sasl_password is None:
            raise ConfigurationError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME"
                " and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        return _SASL[self.sasl_mechanism](
            self.sasl_username, self.sasl_password, ssl_context=context, use_ssl=self.uses_tls
        )

    def client_options(self, role: ClientRole) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client. The role is
        required so that no client goes out under aiokafka's default id (`aiokafka-<version>`,
        shared with every other aiokafka application on the cluster)."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id_for(role),
            **parse_security(self.security()),
            **self.oauth_options(),
        }

    def oauth_options(self) -> dict[str, Any]:
        """The token provider, for clients that speak SASL/OAUTHBEARER (the FastStream broker
        takes it as a keyword of its own)."""
        if self.uses_sasl and self.sasl_mechanism == "OAUTHBEARER":
            return {"sasl_oauth_token_provider": self.oauth_token_provider}
        return {}
