"""Replies to commands that ask for one (contracts.replies): where they may go, what the inbox
keeps to answer a duplicate, and the reply message itself.

A sender names the topic in the `reply_to` header. The service writes there with its own
credentials, so the topic is checked before anything is decided: it must be a legal Kafka topic
under an allowed prefix (default `replies.`), and, unless turned off, name the command's tenant
right after the prefix (`replies.<tenant_id>` or `replies.<tenant_id>_<name>`), so that one
tenant can never make the service write another tenant's outcomes into its replies, nor
anything into `orders.events`. Tenant ids with characters Kafka topic names cannot hold (`:`,
`/`) get no replies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.headers import CORRELATION_ID, REPLY_TO
from contracts.replies import MAX_REPLY_ERRORS, MAX_REPLY_EVENTS, MAX_REPLY_TEXT, CommandReply
from service.app.family import EventRef
from service.app.parse import Identity
from service.app.ports import OutboxMessage, Outcome
from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen
from service.errors import ConfigurationError

KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
"""What Kafka accepts as a topic name."""
MAX_CORRELATION_ID = 128
REPLY_FIELD = f"headers.{REPLY_TO}"


@frozen
class ReplyRoute:
    """Where a command's reply goes, and the correlation_id to write back on it."""

    topic: str
    correlation_id: bytes | None = None


@frozen
class ReplyPolicy:
    """Which reply topics a sender may name."""

    prefixes: tuple[str, ...] = ("replies.",)
    """Full prefixes, the deployment's topic prefix included."""
    per_tenant: bool = True
    """The tenant id must follow the prefix: `replies.<tenant>` or `replies.<tenant>_<name>`."""

    def check(self, topics: Sequence[str]) -> None:
        """Refuse prefixes under which the service's own topics fall: with one of those, a
        sender could have replies written among events or commands."""
        for prefix in self.prefixes:
            if not KAFKA_TOPIC.fullmatch(prefix):
                raise ConfigurationError(f"reply topic prefix {prefix!r} is not a topic prefix")
            covered = sorted(topic for topic in topics if topic.startswith(prefix))
            if covered:
                raise ConfigurationError(
                    f"reply topic prefix {prefix!r} covers the service's topics"
                    f" {', '.join(covered)}; choose one that none of them starts with"
                )

    def route(
        self, headers: Sequence[tuple[str, bytes]], tenant_id: str | None
    ) -> ReplyRoute | Problem | None:
        """The reply route a message asks for (None: none asked), or why it may not have it."""
        topics = [value for name, value in headers if name == REPLY_TO]
        if not topics:
            return None
        if len(topics) > 1:
            return _refused("name one reply topic; the message carries several reply_to headers")
        raw = topics[0]
        topic = raw.decode("ascii", "replace")
        if not KAFKA_TOPIC.fullmatch(topic) or topic in (".", ".."):
            return _refused(
                "the reply topic must be a Kafka topic name: 1 to 249 of A-Z a-z 0-9 . _ -"
            )
        if not self._allowed(topic, tenant_id):
            return _refused(f"the service does not reply to {topic!r}: {self._rule()}")
        correlations = [value for name, value in headers if name == CORRELATION_ID]
        if len(correlations) > 1:
            return Problem(
                ErrorCode.INVALID_REQUEST,
                "send at most one correlation_id header",
                f"headers.{CORRELATION_ID}",
            )
        correlation = correlations[0] if correlations else None
        if correlation is not None and not _printable(correlation):
            return Problem(
                ErrorCode.INVALID_REQUEST,
                f"a correlation_id is 1 to {MAX_CORRELATION_ID} printable ASCII characters",
                f"headers.{CORRELATION_ID}",
            )
        return ReplyRoute(topic, correlation)

    def _allowed(self, topic: str, tenant_id: str | None) -> bool:
        for prefix in self.prefixes:
            if not topic.startswith(prefix):
                continue
            if not self.per_tenant:
                return len(topic) > len(prefix)
            rest = topic[len(prefix) :]
            # `_` cannot occur in a tenant id, so `<tenant>_<name>` names one tenant's topic;
            # with `.` (which can), tenant `acme` could reach `replies.acme.eu` of `acme.eu`.
            if tenant_id is not None and (rest == tenant_id or rest.startswith(f"{tenant_id}_")):
                return True
        return False

    def _rule(self) -> str:
        shapes = [
            f"{p}<tenant_id>[_<name>]" if self.per_tenant else f"{p}<name>" for p in self.prefixes
        ]
        return "replies go to " + " or ".join(shapes)


def _refused(message: str) -> Problem:
    return Problem(ErrorCode.FORBIDDEN, message, REPLY_FIELD)


def _printable(value: bytes) -> bool:
    return 0 < len(value) <= MAX_CORRELATION_ID and all(0x20 < byte < 0x7F for byte in value)


@frozen
class Summary:
    """What a reply says of an outcome; the inbox keeps it (small: event references and at
    most MAX_REPLY_ERRORS errors) so that a duplicate is answered as the original was."""

    outcome: Outcome
    events: Sequence[EventRef] = ()
    problems: Sequence[Problem] = ()

    def stored(self) -> bytes:
        """The reply fields as JSON: compact, built without a model (it is kept per command)."""
        return json.dumps(self.fields(), separators=(",", ":")).encode()

    def fields(self) -> dict[str, Any]:
        """The fields of contracts.replies.CommandReply this summary fills."""
        return {
            "outcome": self.outcome.value,
            "events": [
                {
                    "event_id": str(ref.event_id),
                    "type": ref.type,
                    "version": ref.version,
                    "document_id": ref.document_id,
                }
                for ref in self.events[:MAX_REPLY_EVENTS]
            ],
            "events_omitted": max(0, len(self.events) - MAX_REPLY_EVENTS),
            "errors": [
                {
                    "error_type": problem.error_type.value,
                    "error_code": problem.code.value,
                    "message": _cut(problem.message),
                    "field": None if problem.field is None else _cut(problem.field),
                }
                for problem in self.problems[:MAX_REPLY_ERRORS]
            ],
            "errors_omitted": max(0, len(self.problems) - MAX_REPLY_ERRORS),
        }


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REPLY_TEXT else f"{text[: MAX_REPLY_TEXT - 3]}..."


def stored_fields(outcome: str | None, stored: bytes | None) -> dict[str, Any]:
    """The reply fields of an outcome the inbox holds; from its outcome alone for keys claimed
    before replies were kept."""
    if stored is not None:
        fields: dict[str, Any] = json.loads(stored)
        return fields
    return {"outcome": outcome or Outcome.ACCEPTED.value}


def reply_message(
    route: ReplyRoute,
    identity: Identity,
    command_id: UUID,
    tenant_id: str,
    fields: dict[str, Any],
    *,
    digest: str,
    repeat: bool,
    replied_at: datetime,
) -> OutboxMessage:
    """The reply, keyed by command_id, with the sender's correlation_id back as a header."""
    reply = CommandReply.model_validate(
        {
            "command_id": command_id,
            "tenant_id": tenant_id,
            "type": identity.type,
            "document_id": identity.document_id,
            "accepted": fields["outcome"] == Outcome.ACCEPTED.value,
            "repeat": repeat,
            "request_digest": digest,
            "replied_at": replied_at,
            **fields,
        }
    )
    headers = () if route.correlation_id is None else ((CORRELATION_ID, route.correlation_id),)
    return OutboxMessage(
        route.topic, str(command_id).encode(), reply.model_dump_json().encode(), headers
    )
