"""The use case: decide a polled batch of commands in one transaction and queue their outcomes.

A batch is claimed in the inbox, its documents locked, its commands decided in offset order (a
command sees what its predecessors in the batch left) and its outcomes queued, all in one
transaction. Transient failures retry the batch with backoff for as long as they last (offsets
are committed only after the batch commits, so nothing is lost). Any other failure splits the
batch until the culprit stands alone; a command that keeps failing for an unexpected reason is
parked in the dead-letter topic, with a rejection for its sender, so it cannot block its
partition, while the rest of its batch commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar
from uuid import UUID

from service.app.auth import Gate, Unauthorized
from service.app.family import BatchDecider
from service.app.incoming import IncomingMessage
from service.app.observer import NoObserver, ProcessingObserver, RetryCause, Settled
from service.app.outcomes import (
    dead_letter_message,
    rejection_message,
    sealed_dead_letter_envelope,
    sealed_dead_letter_message,
    with_trace_context,
)
from service.app.parse import (
    Identity,
    InvalidCommand,
    ValidCommand,
    key_text,
    parse_command,
)
from service.app.ports import Answer, Claim, OutboxMessage, Outcome, Store, UnitOfWork
from service.app.previews import Previews
from service.app.provenance import Signer, read_replay
from service.app.received import Received, command_key
from service.app.strict_json import is_storable
from service.app.token_uses import bind_tokens
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
    """Processes the commands of one document family; its decider decides them."""

    def __init__(
        self,
        store: Store,
        decider: BatchDecider[C],
        *,
        max_command_bytes: int,
        retry: RetryPolicy | None = None,
        clock: Clock = utc_now,
        observer: ProcessingObserver | None = None,
        gate: Gate[C] | None = None,
        signer: Signer,
        preview_limit: int = 100,
    ) -> None:
        self._store = store
        self._decider = decider
        self._family = decider.family
        self._max_command_bytes = max_command_bytes
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._observer = observer or NoObserver()
        self._gate = gate
        self._signer = signer
        self._previews = Previews(
            store, decider, clock, self._retried, self._back_off, limit=preview_limit
        )
        self._stopping = asyncio.Event()
        self.unanswered: dict[str, str] = {}
        """Messages whose parking keeps failing (source -> error type); their offsets wait."""

    def stop(self) -> None:
        """Abandon retries in progress: their commands stay uncommitted and are redelivered."""
        self._stopping.set()

    async def process(self, message: IncomingMessage) -> Outcome:
        """Decide one message; see process_batch."""
        [outcome] = await self.process_batch([message])
        return outcome

    async def process_batch(self, messages: Sequence[IncomingMessage]) -> list[Outcome]:
        """Decide a batch, in order. Returns only once every outcome is committed, so the caller
        may commit the offsets; raises only ProcessingAbandonedError (stopping) or
        cancellation."""
        started = time.perf_counter()
        batch = [self._receive(message) for message in messages]
        dry_runs = {i for i, r in enumerate(batch) if r.is_dry_run}
        if dry_runs:
            real = [r for i, r in enumerate(batch) if i not in dry_runs]
            decided = iter(await self._settle(real) if real else [])
            previewed = iter(await self._previews.answer([batch[i] for i in sorted(dry_runs)]))
            outcomes = [next(previewed if i in dry_runs else decided) for i in range(len(batch))]
        else:
            outcomes = await self._settle(batch)
        settled = [
            Settled(
                received.identity.type,
                outcome,
                received.identity.command_id is not None,
                received.message.timestamp_ms,
            )
            for received, outcome in zip(batch, outcomes, strict=True)
        ]
        self._observer.batch_settled(self._family.name, settled, time.perf_counter() - started)
        return outcomes

    def _receive(self, message: IncomingMessage) -> Received[C]:
        try:
            parsed = parse_command(message, self._max_command_bytes, self._family.commands)
            replay = read_replay(self._signer, message)
            gate = self._gate
            if gate is None:
                return Received(message, parsed, replay=replay)
            if isinstance(parsed, InvalidCommand):
                token = gate.token_of(message.headers, parsed.identity.command_id)
                return Received(message, parsed, replay=replay, token=token)
            if replay is not None:
                return Received(message, gate.admit_replay(parsed, replay.claims), replay=replay)
            admitted = gate.admit(message.headers, parsed)
            return Received(message, admitted, token=admitted.claims)
        except Exception as defect:
            return Received(message, None, defect)

    async def _settle(self, batch: list[Received[C]]) -> list[Outcome]:
        attempt = 0
        while True:
            try:
                return await self._decide(batch)
            except TransientError as error:
                log.warning("transient failure, retrying %d commands: %s", len(batch), error)
                self._retried(RetryCause.TRANSIENT)
            except Exception as error:
                if not await self._store.reachable():
                    # The server or connection failed, not the commands: wait it out.
                    log.warning("database unreachable, retrying: %s", _described(error))
                    self._retried(RetryCause.DATABASE_UNREACHABLE)
                elif len(batch) == 1:
                    return [await self._settle_alone(batch[0], error)]
                else:
                    middle = len(batch) // 2
                    log.debug("batch of %d failed (%s); splitting", len(batch), error)
                    return [
                        *await self._settle(batch[:middle]),
                        *await self._settle(batch[middle:]),
                    ]
            await self._back_off(attempt)
            attempt += 1

    async def _settle_alone(self, received: Received[C], error: Exception) -> Outcome:
        """One message that failed unexpectedly: retried a few times, then parked."""
        source = received.message.source
        fields = received.log_fields()
        log.error("unexpected failure processing %s", source, exc_info=error, extra=fields)
        failures, attempt = 1, 0
        while failures < self._retry.unexpected_failure_attempts:
            self._retried(RetryCause.UNEXPECTED_FAILURE)
            await self._back_off(attempt)
            attempt += 1
            try:
                [outcome] = await self._decide([received])
                return outcome
            except TransientError as retry_error:
                log.warning(
                    "transient failure on %s, retrying: %s", source, retry_error, extra=fields
                )
                self._retried(RetryCause.TRANSIENT)
            except Exception as retry_error:
                if not await self._store.reachable():
                    self._retried(RetryCause.DATABASE_UNREACHABLE)
                    continue
                failures += 1
                error = retry_error
                log.warning(
                    "unexpected failure %d processing %s: %s",
                    failures,
                    source,
                    _described(error),
                    extra=fields,
                )
        return await self._park(received, f"unexpected failure: {_described(error)}")

    def _retried(self, cause: RetryCause) -> None:
        self._observer.retried(self._family.name, cause)

    async def _back_off(self, attempt: int) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), self._retry.backoff(attempt))
        except TimeoutError:
            return
        raise ProcessingAbandonedError("the service is stopping; the commands will be redelivered")

    async def _decide(self, batch: list[Received[C]]) -> list[Outcome]:
        """One transaction: every outcome of the batch commits, or none does."""
        for received in batch:
            if received.defect is not None:
                raise received.defect
        now = self._clock()
        family = self._family.name
        async with self._store.unit_of_work() as uow:
            batch = await bind_tokens(uow, family, batch)
            await uow.reopen_for_replay(
                [r.inbox_key(family) for r in batch if r.is_replay and r.admitted]
            )
            taken = await self._taken_command_ids(uow, batch)
            # A refused copy of a decided command is that command again: no second answer.
            copies = {
                i
                for i, stored in taken.items()
                if isinstance(batch[i].parsed, Unauthorized) and stored == batch[i].request_hash
            }
            claimable = [r for i, r in enumerate(batch) if i not in copies]
            claimed = iter(
                await uow.claim_many([(r.inbox_key(family), r.request_hash) for r in claimable])
            )
            claims = [Claim.DUPLICATE if i in copies else next(claimed) for i in range(len(batch))]
            new_commands = [
                r.parsed
                for r, claim in zip(batch, claims, strict=True)
                if claim is Claim.NEW and isinstance(r.parsed, ValidCommand)
            ]
            await uow.lock_documents([(c.tenant_id, c.document_id) for c in new_commands])
            # Refused messages are set aside before anything is decided: an erasure in the same
            # batch then destroys their letters' keys too, whatever their order in it.
            refusals = {
                i: await self._refusal(uow, received, now, i not in taken)
                for i, (received, claim) in enumerate(zip(batch, claims, strict=True))
                if claim is Claim.NEW and isinstance(received.parsed, InvalidCommand)
            }
            decisions = iter(await self._decider.decide(uow, new_commands, now))
            answers: list[Answer] = []
            reuses: list[OutboxMessage] = []
            """Answers that change no inbox outcome."""
            outcomes: list[Outcome] = []
            for i, (received, claim) in enumerate(zip(batch, claims, strict=True)):
                key = received.inbox_key(family)
                parsed = received.parsed
                # Never an answer in the name of a command_id that an admitted command holds:
                # it would reach that command's sender as if it were theirs.
                answered = i not in taken
                if claim is not Claim.NEW:
                    outcomes.append(await self._answer_repeat(uow, claim, received, now, reuses))
                elif isinstance(parsed, ValidCommand):
                    decided = next(decisions)
                    outcome = Outcome.ACCEPTED if decided.accepted else Outcome.REJECTED
                    messages = with_trace_context(decided.messages, received.message.headers)
                    answers.append(Answer(key, outcome, messages))
                    outcomes.append(outcome)
                elif isinstance(parsed, Unauthorized):
                    messages = self._unauthorized(received, parsed, now) if answered else []
                    answers.append(Answer(key, Outcome.REJECTED, messages))
                    outcomes.append(Outcome.REJECTED)
                else:
                    answers.append(Answer(key, Outcome.DEAD_LETTERED, refusals[i]))
                    outcomes.append(Outcome.DEAD_LETTERED)
            await uow.answer_many(answers, reuses)
        for received, claim in zip(batch, claims, strict=True):
            if claim is Claim.NEW:
                self._report_refusal(received)
        return outcomes

    async def _taken_command_ids(
        self, uow: UnitOfWork, batch: list[Received[C]]
    ) -> dict[int, bytes | None]:
        """The messages not admitted (refused or invalid) whose command_id an admitted command
        holds in their family and tenant, with the request hash it was claimed with (None when
        it is claimed in this very batch)."""
        family = self._family.name
        named = {
            i: command_key(family, tenant_id, command_id)
            for i, r in enumerate(batch)
            if not r.admitted
            and (command_id := r.identity.command_id) is not None
            and (tenant_id := r.identity.tenant_id) is not None
        }
        if not named:
            return {}
        in_batch = {r.inbox_key(family) for r in batch if r.admitted}
        stored = await uow.stored_request_hashes(sorted(set(named.values()) - in_batch))
        return {i: stored.get(key) for i, key in named.items() if key in in_batch or key in stored}

    def _report_refusal(self, received: Received[C]) -> None:
        parsed = received.parsed
        if isinstance(parsed, Unauthorized):
            self._observer.refused(self._family.name, parsed.cause)
            limit_key = f"gate/{self._family.name}/{parsed.cause.value}"
        elif isinstance(parsed, InvalidCommand):
            limit_key = f"invalid/{self._family.name}"
        else:
            return
        log.warning(
            "refused %s (command_id %s): %s",
            received.message.source,
            received.identity.command_id or "unreadable",
            parsed.reason,
            extra={**received.log_fields(), "limit_key": limit_key},
        )

    async def _refusal(
        self, uow: UnitOfWork, received: Received[C], now: datetime, answered: bool
    ) -> list[OutboxMessage]:
        """An invalid message: its dead letter, and a rejection if its command_id is readable
        and `answered`."""
        invalid = received.parsed
        assert isinstance(invalid, InvalidCommand)
        messages = [await self._dead_letter(uow, received, invalid.reason)]
        command_id = invalid.identity.command_id
        if command_id is not None and answered:
            rejection = rejection_message(
                self._family, invalid.identity, command_id, invalid.problems, now
            )
            messages[:0] = with_trace_context([rejection], received.message.headers)
        return messages

    def _unauthorized(
        self, received: Received[C], refused: Unauthorized, now: datetime
    ) -> list[OutboxMessage]:
        command_id = refused.identity.command_id
        assert command_id is not None, "only a valid command reaches the gate"
        rejection = rejection_message(
            self._family, refused.identity, command_id, refused.problems, now
        )
        return with_trace_context([rejection], received.message.headers)

    async def _answer_repeat(
        self,
        uow: UnitOfWork,
        claim: Claim,
        received: Received[C],
        now: datetime,
        repeats: list[OutboxMessage],
    ) -> Outcome:
        """A key seen before: a faithful re-send changes nothing; a reused key is refused once."""
        command_id = received.identity.command_id
        if claim is Claim.DUPLICATE or command_id is None or not received.admitted:
            return Outcome.DUPLICATE
        if not await uow.claim_reuse(received.inbox_key(self._family.name), received.request_hash):
            return Outcome.DUPLICATE
        problem = Problem(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"command_id {command_id} was already used for a different command; "
            "use a new command_id for a new request",
            "command_id",
        )
        repeats += with_trace_context(
            [rejection_message(self._family, received.identity, command_id, [problem], now)],
            received.message.headers,
        )
        return Outcome.REJECTED

    async def _dead_letter(
        self, uow: UnitOfWork, received: Received[C], reason: str
    ) -> OutboxMessage:
        """The message set aside, signed, with the authority it was admitted on (so a replay
        gets that much and no more)."""
        message, identity = received.message, received.identity
        authority = received.parsed.claims if isinstance(received.parsed, ValidCommand) else None
        if not self._family.seals_dead_letters(message.value):
            return dead_letter_message(self._family, message, reason, authority, self._signer)
        # A body that cannot be read names nothing; its Kafka key, by contract the order's id
        # (or the customer's), still ties it to what an erasure will look for.
        named_order = identity.order_id or (
            _key_text(message.key) if identity.command_id is None else None
        )
        key_id, sealed = await uow.seal_dead_letter(
            sealed_dead_letter_envelope(message),
            identity.tenant_id,
            identity.subject,
            named_order,
        )
        return sealed_dead_letter_message(
            self._family, message, reason, key_id, sealed, authority, self._signer
        )

    async def _park(self, received: Received[C], reason: str) -> Outcome:
        """Move a message that cannot be processed out of the way: a dead letter, and a
        rejection when its command_id can be read, so that its sender is not left waiting.

        Parking writes only bytes and checked text, so it should not fail on content; if it
        fails anyway, it is retried for as long as it takes and reported, and the offset stays
        where it is: the message is never passed over unanswered.
        """
        source = received.message.source
        attempt = 0
        while True:
            try:
                key = received.inbox_key(self._family.name)
                async with self._store.unit_of_work() as uow:
                    if received.is_replay and received.admitted:
                        await uow.reopen_for_replay([key])
                    [claim] = await uow.claim_many([(key, received.request_hash)])
                    if claim is Claim.NEW:
                        parked = [await self._dead_letter(uow, received, reason)]
                        command_id = received.identity.command_id
                        if command_id is not None:
                            answer = self._not_processed(received.identity, command_id)
                            parked[:0] = with_trace_context([answer], received.message.headers)
                        await uow.answer_many([Answer(key, Outcome.PARKED, parked)])
                self.unanswered.pop(source, None)
                log.warning(
                    "parked %s in the dead-letter topic: %s",
                    source,
                    reason,
                    extra=received.log_fields(),
                )
                return Outcome.PARKED
            except TransientError as error:
                log.warning(
                    "transient failure while parking %s, retrying: %s",
                    source,
                    error,
                    extra=received.log_fields(),
                )
                self._retried(RetryCause.TRANSIENT)
            except Exception as error:
                self._retried(RetryCause.PARKING_FAILED)
                self.unanswered[source] = type(error).__name__
                log.error(
                    "parking %s failed (%s); its offset stays uncommitted, retrying",
                    source,
                    _described(error),
                    exc_info=attempt == 0,
                    extra=received.log_fields(),
                )
            await self._back_off(attempt)
            attempt += 1

    def _not_processed(self, identity: Identity, command_id: UUID) -> OutboxMessage:
        attempts = self._retry.unexpected_failure_attempts
        problem = Problem(
            ErrorCode.PROCESSING_FAILED,
            f"the service could not process this command ({attempts} attempts failed for an"
            " unexpected reason); nothing changed, and the command was set aside in the"
            " dead-letter topic for an operator",
            None,
        )
        return rejection_message(self._family, identity, command_id, [problem], self._clock())


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _key_text(key: bytes | None) -> str | None:
    """A Kafka key as text, when it is short, storable UTF-8."""
    text = key_text(key)
    return text if text and len(text) <= 200 and is_storable(text) else None
