"""A consumed message and what the edge made of it, with what the processor asks of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.app.auth import Unauthorized
from service.app.incoming import IncomingMessage
from service.app.outcomes import REPLAYED_FROM, trace_id
from service.app.parse import UNREADABLE, Identity, InvalidCommand, ValidCommand

C = TypeVar("C")


@dataclass(frozen=True)
class Received(Generic[C]):
    """A consumed message and what the edge made of it."""

    message: IncomingMessage
    parsed: ValidCommand[C] | InvalidCommand | Unauthorized | None
    defect: Exception | None = None
    """Parsing itself raised: a defect of the service, handled like any unexpected failure."""

    @property
    def identity(self) -> Identity:
        return self.parsed.identity if self.parsed is not None else UNREADABLE

    @property
    def is_dry_run(self) -> bool:
        return isinstance(self.parsed, ValidCommand) and self.parsed.dry_run

    @property
    def is_replay(self) -> bool:
        """Re-published by an operator from a dead-letter topic."""
        return any(name == REPLAYED_FROM for name, _ in self.message.headers)

    @property
    def inbox_key(self) -> str:
        """The command_id when readable; otherwise where the message came from."""
        command_id = self.identity.command_id
        return str(command_id) if command_id is not None else f"kafka:{self.message.source}"

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
        if isinstance(self.parsed, ValidCommand | InvalidCommand):
            return self.parsed.request_hash
        return hashlib.sha256(self.message.value or b"").digest()
