"""The use case: decide one consumed command inside one transaction and queue its outcome.

Transient failures are retried with backoff for as long as they last (the offset is not committed
meanwhile, so nothing is lost). A message that keeps failing for any other reason is parked in the
dead-letter topic after a few attempts so that it cannot block its partition.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from service.app.family import Handler
from service.app.incoming import IncomingMessage
from service.app.outcomes import (
    dead_letter_message,
    rejection_message,
    sealed_dead_letter_envelope,
    sealed_dead_letter_message,
)
from service.app.parse import (
    UNREADABLE,
    Identity,
    InvalidCommand,
    ValidCommand,
    parse_command,
)
from service.app.ports import Claim, OutboxMessage, Outcome, Store, UnitOfWork
from service.domain.problems import ErrorCode, Problem
from service.errors import ProcessingAbandonedError, TransientError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
C = TypeVar("C")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    first_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 5.0
    unexpected_failure_attempts: int = 3

    def backoff(self, attempt: int) -> float:
        return float(
            min(self.max_backoff_seconds, self.first_backoff_seconds * 2 ** min(attempt, 20))
        )


class CommandProcessor(Generic[C]):
    """Processes the commands of one document family; its handler decides them."""

    def __init__(
        self,
        store: Store,
        handler: Handler[C],
        *,
        max_command_bytes: int,
        retry: RetryPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._handler = handler
        self._family = handler.family
        self._max_command_bytes = max_command_bytes
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._stopping = asyncio.Event()
        self.unanswered: dict[str, str] = {}
        """Messages whose parking keeps failing (source -> error type); their offsets wait."""

    def stop(self) -> None:
        """Abandon retries in progress: their commands stay uncommitted and are redelivered."""
        self._stopping.set()

    async def process(self, message: IncomingMessage) -> Outcome:
        """Decide one message. Returns only once its outcome is committed, so the caller may
        commit its offset; raises only ProcessingAbandonedError (stopping) or cancellation."""
        parsed: ValidCommand[C] | InvalidCommand | None = None
        unexpected_failures = 0
        attempt = 0
        while True:
            try:
                parsed = parse_command(message, self._max_command_bytes, self._family.commands)
                return await self._apply(parsed, message)
            except TransientError as error:
                log.warning("transient failure on %s, retrying: %s", message.source, error)
            except Exception as error:
                unexpected_failures += 1
                if unexpected_failures == 1:
                    log.exception("unexpected failure processing %s", message.source)
                else:
                    log.warning(
                        "unexpected failure %d processing %s: %s",
                        unexpected_failures,
                        message.source,
                        _described(error),
                    )
                if unexpected_failures >= self._retry.unexpected_failure_attempts:
                    reason = f"unexpected failure: {_described(error)}"
                    return await self._park(message, reason, parsed)
            await self._back_off(attempt)
            attempt += 1

    async def _back_off(self, attempt: int) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), self._retry.backoff(attempt))
        except TimeoutError:
            return
        raise ProcessingAbandonedError("the service is stopping; the command will be redelivered")

    async def _apply(
        self, parsed: ValidCommand[C] | InvalidCommand, message: IncomingMessage
    ) -> Outcome:
        """One transaction: the whole outcome commits, or nothing does."""
        async with self._store.unit_of_work() as uow:
            if isinstance(parsed, ValidCommand):
                return await self._decide(uow, parsed)
            return await self._refuse(uow, parsed, message)

    async def _decide(self, uow: UnitOfWork, cmd: ValidCommand[C]) -> Outcome:
        key = str(cmd.command_id)
        claim = await uow.claim(key, cmd.request_hash)
        if claim is not Claim.NEW:
            return await self._answer_repeat(uow, claim, key, cmd.request_hash, cmd)
        await uow.lock_document(cmd.tenant_id, cmd.document_id)
        decided = await self._handler.handle(uow, cmd, self._clock())
        outcome = Outcome.ACCEPTED if decided.accepted else Outcome.REJECTED
        await uow.answer(key, outcome, decided.messages)
        return outcome

    async def _refuse(
        self, uow: UnitOfWork, invalid: InvalidCommand, message: IncomingMessage
    ) -> Outcome:
        command_id = invalid.identity.command_id
        key = _inbox_key(invalid, message)
        claim = await uow.claim(key, invalid.request_hash)
        if claim is not Claim.NEW:
            return await self._answer_repeat(uow, claim, key, invalid.request_hash, invalid)
        outgoing = [await self._dead_letter(uow, message, invalid.reason, invalid.identity)]
        if command_id is not None:
            outgoing.insert(
                0,
                rejection_message(
                    self._family, invalid.identity, command_id, invalid.problems, self._clock()
                ),
            )
        await uow.answer(key, Outcome.DEAD_LETTERED, outgoing)
        log.warning(
            "refused %s (command_id %s): %s",
            message.source,
            command_id or "unreadable",
            invalid.reason,
        )
        return Outcome.DEAD_LETTERED

    async def _answer_repeat(
        self,
        uow: UnitOfWork,
        claim: Claim,
        key: str,
        request_hash: bytes,
        parsed: ValidCommand[C] | InvalidCommand,
    ) -> Outcome:
        """A key seen before: a faithful re-send changes nothing; a reused key is refused once."""
        command_id = parsed.identity.command_id
        if claim is Claim.DUPLICATE or command_id is None:
            return Outcome.DUPLICATE
        if not await uow.claim_reuse(key, request_hash):
            return Outcome.DUPLICATE
        problem = Problem(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"command_id {command_id} was already used for a different command; "
            "use a new command_id for a new request",
            "command_id",
        )
        await uow.enqueue(
            [rejection_message(self._family, parsed.identity, command_id, [problem], self._clock())]
        )
        return Outcome.REJECTED

    async def _dead_letter(
        self,
        uow: UnitOfWork,
        message: IncomingMessage,
        reason: str,
        identity: Identity,
    ) -> OutboxMessage:
        if not self._family.seals_dead_letters:
            return dead_letter_message(self._family, message, reason)
        key_id, sealed = await uow.seal_dead_letter(
            sealed_dead_letter_envelope(message), identity.tenant_id, identity.subject
        )
        return sealed_dead_letter_message(self._family, message, reason, key_id, sealed)

    async def _park(
        self,
        message: IncomingMessage,
        reason: str,
        parsed: ValidCommand[C] | InvalidCommand | None,
    ) -> Outcome:
        """Move a message that cannot be processed out of the way: a dead letter, and a
        rejection when its command_id can be read, so that its sender is not left waiting.

        Parking writes only bytes and checked text, so it should not fail on content; if it
        fails anyway, it is retried for as long as it takes and reported, and the offset stays
        where it is: the message is never passed over unanswered.
        """
        key = _inbox_key(parsed, message)
        request_hash = (
            parsed.request_hash if parsed else hashlib.sha256(message.value or b"").digest()
        )
        identity = parsed.identity if parsed is not None else UNREADABLE
        attempt = 0
        while True:
            try:
                async with self._store.unit_of_work() as uow:
                    if await uow.claim(key, request_hash) is Claim.NEW:
                        parked = [await self._dead_letter(uow, message, reason, identity)]
                        if identity.command_id is not None:
                            parked.insert(0, self._not_processed(identity, identity.command_id))
                        await uow.answer(key, Outcome.PARKED, parked)
                self.unanswered.pop(message.source, None)
                log.warning("parked %s in the dead-letter topic: %s", message.source, reason)
                return Outcome.PARKED
            except TransientError as error:
                log.warning(
                    "transient failure while parking %s, retrying: %s", message.source, error
                )
            except Exception as error:
                self.unanswered[message.source] = type(error).__name__
                log.error(
                    "parking %s failed (%s); its offset stays uncommitted, retrying",
                    message.source,
                    _described(error),
                    exc_info=attempt == 0,
                )
            await self._back_off(attempt)
            attempt += 1

    def _not_processed(self, identity: Identity, command_id: UUID) -> OutboxMessage:
        problem = Problem(
            ErrorCode.PROCESSING_FAILED,
            f"the service could not process this command ({self._retry.unexpected_failure_attempts}"
            " attempts failed for an unexpected reason); nothing changed, and the command was"
            " set aside in the dead-letter topic for an operator",
            None,
        )
        return rejection_message(self._family, identity, command_id, [problem], self._clock())


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _inbox_key(parsed: ValidCommand[Any] | InvalidCommand | None, message: IncomingMessage) -> str:
    """The command_id when readable; otherwise where the message came from."""
    command_id = parsed.identity.command_id if parsed is not None else None
    return str(command_id) if command_id is not None else f"kafka:{message.source}"
