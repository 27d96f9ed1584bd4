"""Every answer the processor gives a message, built in one place from what was received.

A family's decider answers the commands it decides; everything else is answered here: the
rejection of a refused or invalid message, of a reused command id, of a command that could not
be processed; dead letters; previews. Each answer to a command carries the command's trace
context, added here and nowhere else (a dead letter keeps the headers the command came with, or,
sealed, none in the clear). Pure: sealing a dead letter is the store's work, and its
result is handed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from contracts.replies import request_digest
from service.app.auth import Unauthorized
from service.app.family import Decided, Family
from service.app.messages import (
    dead_letter_message,
    preview_message,
    rejection_message,
    sealed_dead_letter_envelope,
    sealed_dead_letter_message,
)
from service.app.parse import ValidCommand, key_text
from service.app.ports import OutboxMessage, Outcome
from service.app.provenance import Signer
from service.app.received import Received
from service.app.replies import reply_message
from service.app.strict_json import is_storable
from service.app.trace_context import with_trace_context
from service.domain.problems import ErrorCode, Problem

C = TypeVar("C")


class Answers(Generic[C]):
    def __init__(self, family: Family[C], signer: Signer) -> None:
        self._family = family
        self._signer = signer

    def traced(
        self, received: Received[C], messages: Sequence[OutboxMessage]
    ) -> list[OutboxMessage]:
        """The messages answering `received`, with its trace context."""
        return with_trace_context(messages, received.message.headers)

    def decided(self, received: Received[C], decided: Decided) -> list[OutboxMessage]:
        return self.traced(received, decided.messages)

    def rejection(
        self, received: Received[C], problems: Sequence[Problem], now: datetime
    ) -> list[OutboxMessage]:
        """A rejection naming the message's command_id; none when it has no readable one."""
        identity = received.identity
        if identity.command_id is None:
            return []
        message = rejection_message(self._family, identity, identity.command_id, problems, now)
        return self.traced(received, [message])

    def refusal(self, received: Received[C], now: datetime) -> list[OutboxMessage]:
        """What the token gate said."""
        refused = received.parsed
        assert isinstance(refused, Unauthorized)
        return self.rejection(received, refused.problems, now)

    def reused_key(self, received: Received[C], now: datetime) -> list[OutboxMessage]:
        return self.rejection(received, [reused_key_problem(received)], now)

    def not_processed(
        self, received: Received[C], attempts: int, now: datetime
    ) -> list[OutboxMessage]:
        return self.rejection(received, [not_processed_problem(attempts)], now)

    def reply(
        self,
        received: Received[C],
        fields: Callable[[], dict[str, Any]],
        now: datetime,
        *,
        repeat: bool = False,
    ) -> list[OutboxMessage]:
        """The reply the message asked for (none when it asked for none, or names no command_id
        or tenant to reply about), saying `fields()` (contracts.replies.CommandReply's; built
        only when a reply is written)."""
        route, identity = received.reply, received.identity
        if not received.may_be_replied or route is None:
            return []
        if identity.command_id is None or identity.tenant_id is None:
            return []
        message = reply_message(
            route,
            identity,
            identity.command_id,
            identity.tenant_id,
            fields(),
            digest=request_digest(received.message.key, received.message.value),
            repeat=repeat,
            replied_at=now,
        )
        return self.traced(received, [message])

    def preview_refused(self, cmd: ValidCommand[C], problem: Problem, now: datetime) -> Decided:
        """What a dry run is answered when it was not decided (rate limited, failed)."""
        rejection = rejection_message(self._family, cmd.identity, cmd.command_id, [problem], now)
        return Decided(False, [rejection], problems=(problem,))

    def preview(
        self, received: Received[C], cmd: ValidCommand[C], decided: Decided, now: datetime
    ) -> list[OutboxMessage]:
        """The preview, and the reply carrying it when one was asked for."""
        preview = preview_message(self._family, cmd, decided, now)
        assert preview.value is not None, "a preview is never a tombstone"
        value = preview.value

        def reply() -> dict[str, Any]:
            return {"outcome": Outcome.PREVIEWED.value, "preview": json.loads(value)}

        return [*self.traced(received, [preview]), *self.reply(received, reply, now)]

    def seals_dead_letter(self, received: Received[C]) -> bool:
        return self._family.seals_dead_letters(received.message.value)

    def seal_request(
        self, received: Received[C]
    ) -> tuple[bytes, str | None, str | None, str | None]:
        """What the store seals for a dead letter, and whom it is tied to: (the message,
        tenant, customer, order), so that an erasure of either destroys its key."""
        message, identity = received.message, received.identity
        # A body that cannot be read names nothing; its Kafka key, by contract the order's id
        # (or the customer's), still ties it to what an erasure will look for.
        named_order = identity.order_id or (
            _storable_key(message.key) if identity.command_id is None else None
        )
        return (
            sealed_dead_letter_envelope(message),
            identity.tenant_id,
            identity.subject,
            named_order,
        )

    def dead_letter(
        self, received: Received[C], reason: str, sealed: tuple[UUID, bytes] | None = None
    ) -> OutboxMessage:
        """The message set aside, signed, with the authority it was admitted on (so a replay
        gets that much and no more); `sealed` (key id, bytes) when `seals_dead_letter`."""
        parsed = received.parsed
        authority = parsed.claims if isinstance(parsed, ValidCommand) else None
        if sealed is None:
            return dead_letter_message(
                self._family, received.message, reason, authority, self._signer
            )
        key_id, sealed_bytes = sealed
        return sealed_dead_letter_message(
            self._family, received.message, reason, key_id, sealed_bytes, authority, self._signer
        )


def reused_key_problem(received: Received[Any]) -> Problem:
    return Problem(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        f"command_id {received.identity.command_id} was already used for a different"
        " command; use a new command_id for a new request",
        "command_id",
    )


def not_processed_problem(attempts: int) -> Problem:
    return Problem(
        ErrorCode.PROCESSING_FAILED,
        f"the service could not process this command ({attempts} attempts failed for an"
        " unexpected reason); nothing changed, and the command was set aside in the"
        " dead-letter topic for an operator",
        None,
    )


def _storable_key(key: bytes | None) -> str | None:
    """A Kafka key as text, when it is short, storable UTF-8."""
    text = key_text(key)
    return text if text and len(text) <= 200 and is_storable(text) else None
