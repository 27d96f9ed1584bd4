"""One document family (purchase orders, customer orders, ...): its registration.

A family is its topics, how its commands are read, how its refusals are shaped, how its
documents are stored, and its rules (see service/app/kernel.py). Everything that runs families
(the runtime, the CLI, dead letters, metrics) reads them from the registry
(service/app/registry.py), so adding a family touches none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from uuid import UUID

from contracts.common import RejectionMetadata
from contracts.previews import PreviewMetadata
from contracts.topics import DocumentTopics
from service.app.parse import CommandSpec, ValidCommand
from service.app.ports import DocumentCodec, DocumentKind, OutboxMessage, UnitOfWork
from service.domain.problems import Problem
from service.domain.values import frozen

if TYPE_CHECKING:
    from service.app.kernel import DocumentRules

C = TypeVar("C")


@frozen
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
    rules: DocumentRules[C, Any, Any]
    codec: DocumentCodec[Any] | None = None
    """How its documents are kept in the shared document tables; None for a family whose
    store provides a repository of its own (customer orders, with encrypted personal data)."""
    command_prefixes: tuple[str, ...] = ()
    """What the command types it takes start with (the CLI routes `send` by them)."""

    @property
    def kind(self) -> DocumentKind[Any]:
        return DocumentKind(self.name, self.codec)

    def consumer_group(self, base: str) -> str:
        return f"{base}.{self.name}"


@frozen
class EventRef:
    """An event a command caused, by reference: what a reply names of it."""

    event_id: UUID
    type: str
    version: int
    document_id: str


@frozen
class Decided:
    accepted: bool
    messages: list[OutboxMessage]
    events: Sequence[EventRef] = ()
    """Accepted: the events it caused, in order."""
    problems: Sequence[Problem] = ()
    """Refused: why."""


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
