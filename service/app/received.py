"""A consumed message and what the edge made of it, with what the processor asks of it."""

from __future__ import annotations

from typing import Generic, TypeVar
from uuid import UUID

from service.app.auth import Unauthorized
from service.app.incoming import IncomingMessage
from service.app.parse import UNREADABLE, Identity, InvalidCommand, ValidCommand, body_hash
from service.app.ports import Claims
from service.app.provenance import ReplayGrant
from service.app.replies import ReplyRoute
from service.app.trace_context import trace_id
from service.domain.values import frozen

C = TypeVar("C")


@frozen
class Received(Generic[C]):
    """A consumed message and what the edge made of it."""

    message: IncomingMessage
    parsed: ValidCommand[C] | InvalidCommand | Unauthorized | None
    defect: Exception | None = None
    """Parsing itself raised: a defect of the service, handled like any unexpected failure."""
    replay: ReplayGrant | None = None
    """Re-published by an operator from a dead-letter topic, proven by the service's signature."""
    token: Claims | None = None
    """The claims of the valid token the message carried, bound to its command_id, whatever
    became of the message (admitted, refused, invalid): a token seen is a token used."""
    reply: ReplyRoute | None = None
    """Where its reply goes, when it asked for one on a topic it may name."""

    @property
    def identity(self) -> Identity:
        return self.parsed.identity if self.parsed is not None else UNREADABLE

    @property
    def is_dry_run(self) -> bool:
        return isinstance(self.parsed, ValidCommand) and self.parsed.dry_run

    @property
    def admitted(self) -> bool:
        """A valid command its sender may send."""
        return isinstance(self.parsed, ValidCommand)

    @property
    def may_be_replied(self) -> bool:
        """Whether its reply may be written: into a tenant's replies only for an admitted
        command, or for a message whose verified token names that tenant, so that nobody can
        write into a tenant's replies without being proven its member."""
        if self.reply is None:
            return False
        if self.admitted:
            return True
        return self.token is not None and self.token.tenant == self.identity.tenant_id

    @property
    def is_replay(self) -> bool:
        return self.replay is not None

    def inbox_key(self, family: str) -> str:
        """An admitted command's key is its command_id scoped by family and tenant, so nobody
        can take it from another family, another tenant, or without passing the gate. An
        invalid command is keyed by its content, never its command_id; anything else by where
        it was read, so a redelivery of that record is still answered once."""
        if isinstance(self.parsed, ValidCommand):
            return command_key(family, self.parsed.tenant_id, self.parsed.command_id)
        if isinstance(self.parsed, InvalidCommand) and self.identity.command_id is not None:
            # By its exact bytes: a producer re-sending the same broken command is answered
            # once, and the corrected command, with the same command_id, is decided.
            return f"invalid/{family}/{self.parsed.request_hash.hex()}"
        return f"kafka:{self.message.source}"

    def log_fields(self) -> dict[str, object]:
        """Where the message came from and what it claims to be, for structured logs; never
        any of its content beyond identifiers."""
        command_id = self.identity.command_id
        return {
            "topic": self.message.topic,
            "partition": self.message.partition,
            "offset": self.message.offset,
            "command_id": str(command_id) if command_id is not None else None,
            "tenant_id": self.identity.tenant_id,
            "trace_id": trace_id(self.message.headers),
        }

    @property
    def request_hash(self) -> bytes:
        if isinstance(self.parsed, ValidCommand | InvalidCommand | Unauthorized):
            return self.parsed.request_hash
        return body_hash(self.message.value)


def command_key(family: str, tenant_id: str, command_id: UUID) -> str:
    """The inbox key of an admitted command: `<family>/<tenant>/<command_id>`."""
    return f"{family}/{tenant_id}/{command_id}"
