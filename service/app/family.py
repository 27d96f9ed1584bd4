"""One document family (purchase orders, customer orders) as the processor sees it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from contracts.common import RejectionMetadata
from contracts.previews import PreviewMetadata
from contracts.topics import DocumentTopics
from service.app.parse import CommandSpec, ValidCommand
from service.app.ports import OutboxMessage, UnitOfWork

C = TypeVar("C")


@dataclass(frozen=True)
class Family(Generic[C]):
    """Where a family's messages go, how its commands are read and how refusals are shaped."""

    name: str
    """The topic family, e.g. 'purchase-orders'; also names the family's consumer group."""
    topics: DocumentTopics
    commands: CommandSpec[C]
    rejection_model: type[RejectionMetadata]
    preview_model: type[PreviewMetadata]
    seals_dead_letters: Callable[[bytes | None], bool]
    """Whether the dead letter of a message with this body is published sealed, never as it
    arrived: always where commands carry personal data, and elsewhere whenever the body may
    hold some (see service/app/personal_fields.py)."""

    def consumer_group(self, base: str) -> str:
        return f"{base}.{self.name}"


@dataclass(frozen=True)
class Decided:
    accepted: bool
    messages: list[OutboxMessage]


class BatchDecider(Protocol[C]):
    """Decides a batch of valid commands of its family inside the caller's transaction.

    The processor has already claimed the commands and locked their documents; the decider
    decides them in order (a command sees what its predecessors left), writes the new states
    and returns, per command, the messages that answer it.
    """

    @property
    def family(self) -> Family[C]: ...

    async def decide(
        self, uow: UnitOfWork, commands: Sequence[ValidCommand[C]], now: datetime
    ) -> list[Decided]: ...
