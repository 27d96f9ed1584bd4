"""What the processor reports as it works, for metrics; it never depends on who listens."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from service.app.auth import Refusal
from service.app.ports import Outcome
from service.domain.values import frozen


class RetryCause(StrEnum):
    TRANSIENT = "transient"
    """A lost connection, a serialisation failure, a deadlock: the batch is tried again."""
    DATABASE_UNREACHABLE = "database_unreachable"
    """A failure while the database did not answer: waited out, never held against a command."""
    UNEXPECTED_FAILURE = "unexpected_failure"
    """A command that failed for an unexpected reason, tried again before it is parked."""
    PARKING_FAILED = "parking_failed"
    """Parking a message failed; its offset waits until parking succeeds."""


@frozen
class Settled:
    """One message of a committed batch."""

    command_type: str | None
    """As the message named it; None when unreadable."""
    outcome: Outcome
    command_id_readable: bool
    timestamp_ms: int
    """When the message was produced (its Kafka timestamp)."""


class ProcessingObserver(Protocol):
    def batch_settled(self, family: str, settled: Sequence[Settled], seconds: float) -> None:
        """A batch committed after `seconds` of deciding (retries included)."""

    def retried(self, family: str, cause: RetryCause) -> None:
        """A batch or command is about to be tried again."""

    def refused(self, family: str, reason: Refusal) -> None:
        """A message the token gate refused, by reason."""


class NoObserver:
    def batch_settled(self, family: str, settled: Sequence[Settled], seconds: float) -> None:
        return None

    def retried(self, family: str, cause: RetryCause) -> None:
        return None

    def refused(self, family: str, reason: Refusal) -> None:
        return None
