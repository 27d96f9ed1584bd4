"""The AsyncAPI document of the wire contract (`specification()`).

FastStream builds the channels, operations and payload schemas from the pydantic models
(families.py declares them); this package then adds what FastStream has no words for: the
headers each message really carries (nothing the service does not send), its Kafka key, one
example built with the real models and message builders (so it is valid and shows the very
headers the service writes), in headers.py and messages.py; the servers and the security they
accept, and where replies go, here. The broker only describes; nothing connects or consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

import contracts
from contracts.headers import (
    AUTHORIZATION,
    BEARER_SCHEME,
    REPLY_TO,
)
from contracts.inventory import InventoryMovement
from contracts.replies import CommandReply
from contracts.topics import INVENTORY_MOVEMENTS
from service.entrypoints.asyncapi.families import FAMILIES, REPLIES, declare_family
from service.entrypoints.asyncapi.messages import complete_messages, described_channels

TITLE = "Order lifecycle service"
VERSION = contracts.__version__


def specification() -> dict[str, Any]:
    broker = KafkaBroker()
    for family in FAMILIES:
        declare_family(broker, family)
    broker.publisher(
        INVENTORY_MOVEMENTS,
        title=INVENTORY_MOVEMENTS,
        description=(
            "One signed stock movement per sku and bucket for each accepted change that affects"
            " stock. Summing them gives the stock the orders imply. Each is a CloudEvent in"
            " binary content mode (ce_* headers; the value is the movement)."
        ),
        schema=InventoryMovement,
    )
    broker.publisher(
        f"{REPLIES}.{{tenant_id}}",
        title=REPLIES,
        description=(
            "The one reply to a command that named a topic in its reply_to header (FastStream's"
            " request/reply convention): accepted with the events it caused (by reference),"
            " rejected with its errors, dead-lettered, parked or previewed; a duplicate gets"
            " the first outcome again, marked repeat. The service writes only to topics under"
            " its allowed prefixes, by default replies.<tenant_id> or replies.<tenant_id>_<name>"
            " of the command's own tenant."
        ),
        schema=CommandReply,
    )
    spec = AsyncAPI(
        broker,
        title=TITLE,
        version=VERSION,
        description=(
            "Commands about purchase orders and customer orders, and their outcomes: events and"
            " inventory movements (CloudEvents 1.0, Kafka binding, binary content mode),"
            " rejections, previews, dead letters, replies and each document's current state."
        ),
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    document["servers"] = SERVERS
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    _complete_channels(document)
    complete_messages(document, described_channels())
    _complete_operations(document)
    return document


# --- Servers and security -------------------------------------------------------------------


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def _server(protocol: str, port: str, description: str, security: Sequence[str]) -> dict[str, Any]:
    return {
        "host": "{host}:{port}",
        "protocol": protocol,
        "description": description,
        "variables": {
            "host": {
                "default": "localhost",
                "description": "A bootstrap broker (KAFKA_BOOTSTRAP_SERVERS lists one or more"
                " host:port pairs, comma-separated).",
            },
            "port": {"default": port, "description": "The broker's listener port."},
        },
        "security": [_ref("securitySchemes", name) for name in security],
    }


SASL = ("saslPlain", "saslScramSha256", "saslScramSha512")
SERVERS: dict[str, Any] = {
    "kafka": _server(
        "kafka",
        "9092",
        "A Kafka listener without TLS: KAFKA_SECURITY_PROTOCOL=PLAINTEXT (no authentication;"
        " development) or SASL_PLAINTEXT (one of the SASL schemes).",
        SASL,
    ),
    "kafka-secure": _server(
        "kafka-secure",
        "9093",
        "A Kafka listener with TLS, the server verified against KAFKA_SSL_CA_FILE (or the"
        " system's CAs): KAFKA_SECURITY_PROTOCOL=SSL (optionally with a client certificate) or"
        " SASL_SSL (one of the SASL schemes).",
        ("tlsClientCertificate", *SASL),
    ),
}
_SASL_SETTINGS = (
    " KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE);"
    " with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "saslPlain": {
        "type": "plain",
        "description": "SASL/PLAIN: KAFKA_SASL_MECHANISM=PLAIN," + _SASL_SETTINGS,
    },
    "saslScramSha256": {
        "type": "scramSha256",
        "description": "SASL/SCRAM-SHA-256: KAFKA_SASL_MECHANISM=SCRAM-SHA-256," + _SASL_SETTINGS,
    },
    "saslScramSha512": {
        "type": "scramSha512",
        "description": "SASL/SCRAM-SHA-512: KAFKA_SASL_MECHANISM=SCRAM-SHA-512," + _SASL_SETTINGS,
    },
    "tlsClientCertificate": {
        "type": "X509",
        "description": "Mutual TLS: a client certificate and key (KAFKA_SSL_CERT_FILE,"
        " KAFKA_SSL_KEY_FILE, KAFKA_SSL_KEY_PASSWORD) with KAFKA_SECURITY_PROTOCOL=SSL.",
    },
    "actorToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": f"Per command, not per connection: the `{AUTHORIZATION}` Kafka header of"
        f" a command holds `{BEARER_SCHEME} <JWT>`, the actor token bound to that one command"
        " (jti = command_id), checked as AUTH_MODE says; never stored, logged or echoed.",
    },
}


def _complete_channels(document: dict[str, Any]) -> None:
    channels = document["channels"]
    for channel in channels.values():
        # No server list: a channel is on every server.
        channel.pop("servers", None)
    for family in FAMILIES:
        bindings = channels[family.topics.state]["bindings"]["kafka"]
        bindings["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    channels[REPLIES]["parameters"] = {
        "tenant_id": {
            "description": "The command's tenant_id: the service replies within the sender's"
            " tenant (a sender may add `.<name>` after it in reply_to)."
        }
    }


def _complete_operations(document: dict[str, Any]) -> None:
    """Commands are authorized by their token and answered on the sender's reply topic."""
    for family in FAMILIES:
        operation = document["operations"][family.topics.commands]
        operation["security"] = [_ref("securitySchemes", "actorToken")]
        operation["reply"] = {
            "address": {
                "location": f"$message.header#/{REPLY_TO}",
                "description": "Only when the command names a topic in reply_to.",
            },
            "channel": {"$ref": f"#/channels/{REPLIES}"},
        }
