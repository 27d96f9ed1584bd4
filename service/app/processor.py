"""The use case: decide a polled batch of commands in one transaction and queue their outcomes.

A batch is claimed in the inbox, its documents locked, its commands decided in offset order (a
command sees what its predecessors in the batch left) and its outcomes queued, all in one
transaction (service/app/transaction.py). Transient failures retry the batch with backoff for as
long as they last (offsets are committed only after the batch commits, so nothing is lost). Any
other failure splits the batch until the culprit stands alone; a command that keeps failing for
an unexpected reason is parked in the dead-letter topic, with a rejection for its sender, so it
cannot block its partition, while the rest of its batch commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

from service.app.answers import Answers
from service.app.auth import Gate, Unauthorized
from service.app.family import BatchDecider
from service.app.incoming import IncomingMessage
from service.app.observer import NoObserver, ProcessingObserver, RetryCause, Settled
from service.app.parse import InvalidCommand, parse_command
from service.app.ports import Outcome, Store, TopicDirectory
from service.app.previews import Previews
from service.app.provenance import Signer, read_replay
from service.app.received import Received
from service.app.replies import ReplyPolicy
from service.app.reply_admission import ReplyAdmission
from service.app.retry import Retrier, RetryPolicy, described
from service.app.transaction import BatchTransaction
from service.errors import ProcessingAbandonedError, TransientError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
C = TypeVar("C")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _broker_unavailable(error: Exception) -> RetryCause | None:
    """Looking up topics fails only when the cluster does: wait it out, never skip a batch."""
    return None if isinstance(error, ProcessingAbandonedError) else RetryCause.TRANSIENT


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
        replies: ReplyPolicy | None = None,
        topics: TopicDirectory | None = None,
    ) -> None:
        """`topics`: where to check that reply topics exist; None takes them all to exist."""
        self._store = store
        self._family = decider.family
        self._max_command_bytes = max_command_bytes
        self._clock = clock
        self._observer = observer or NoObserver()
        self._gate = gate
        self._signer = signer
        self._replies = ReplyAdmission[C](replies or ReplyPolicy(), topics)
        self._stopping = asyncio.Event()
        self._retrier = Retrier(
            retry or RetryPolicy(),
            self._stopping,
            lambda cause: self._observer.retried(self._family.name, cause),
        )
        answers = Answers(decider.family, signer)
        self._transaction = BatchTransaction(store, decider, answers)
        self._previews = Previews(
            store, decider, answers, clock, self._retrier, limit=preview_limit
        )
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
        received = [self._receive(m) for m in messages]
        batch = await self._retrier.run(
            lambda: self._replies.topics_exist(received),
            _broker_unavailable,
            "checking reply topics",
        )
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
            return self._replies.route(self._admit(message))
        except Exception as defect:
            return Received(message, None, defect)

    def _admit(self, message: IncomingMessage) -> Received[C]:
        """What the edge and the gate make of a message."""
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

    async def _settle(self, batch: list[Received[C]]) -> list[Outcome]:
        """The batch's outcomes, committed: retried whole while the failure can be waited out,
        split around a command that fails for another reason."""
        try:
            return await self._retrier.run(
                lambda: self._decide(batch), self._waited_out, f"deciding {len(batch)} commands"
            )
        except ProcessingAbandonedError:
            raise
        except Exception as error:
            if len(batch) == 1:
                return [await self._settle_alone(batch[0], error)]
            middle = len(batch) // 2
            log.debug("batch of %d failed (%s); splitting", len(batch), error)
            return [*await self._settle(batch[:middle]), *await self._settle(batch[middle:])]

    async def _decide(self, batch: list[Received[C]]) -> list[Outcome]:
        outcomes = await self._transaction.decide(batch, self._clock())
        for received, outcome in zip(batch, outcomes, strict=True):
            self._report_refusal(received, outcome)
        return outcomes

    async def _waited_out(self, error: Exception) -> RetryCause | None:
        """Why a failure is retried as it is, or None when it may be the commands' fault."""
        if isinstance(error, TransientError):
            return RetryCause.TRANSIENT
        if isinstance(error, ProcessingAbandonedError) or await self._store.reachable():
            return None
        # The server or connection failed, not the commands: wait it out.
        return RetryCause.DATABASE_UNREACHABLE

    async def _settle_alone(self, received: Received[C], error: Exception) -> Outcome:
        """One message that failed unexpectedly: tried a few more times, then parked."""
        source, fields = received.message.source, received.log_fields()
        log.error("unexpected failure processing %s", source, exc_info=error, extra=fields)
        attempts = self._retrier.policy.unexpected_failure_attempts
        last = error
        for failure in range(1, attempts):
            self._retrier.retried(RetryCause.UNEXPECTED_FAILURE)
            await self._retrier.pause(failure - 1)
            try:
                [outcome] = await self._retrier.run(
                    lambda: self._decide([received]), self._waited_out, f"deciding {source}"
                )
                return outcome
            except ProcessingAbandonedError:
                raise
            except Exception as retry_error:
                last = retry_error
                log.warning(
                    "unexpected failure %d processing %s: %s",
                    failure + 1,
                    source,
                    described(retry_error),
                    extra=fields,
                )
        return await self._park(received, f"unexpected failure: {described(last)}")

    async def _park(self, received: Received[C], reason: str) -> Outcome:
        """Move a message that cannot be processed out of the way. Parking writes only bytes and
        checked text, so it should not fail on content; if it fails anyway, it is retried for as
        long as it takes and reported, and the offset stays where it is: the message is never
        passed over unanswered."""
        source = received.message.source
        attempts = self._retrier.policy.unexpected_failure_attempts

        async def parking_failed(error: Exception) -> RetryCause | None:
            if isinstance(error, ProcessingAbandonedError):
                return None
            if isinstance(error, TransientError):
                return RetryCause.TRANSIENT
            first = source not in self.unanswered
            self.unanswered[source] = type(error).__name__
            log.error(
                "parking %s failed (%s); its offset stays uncommitted, retrying",
                source,
                described(error),
                exc_info=first,
                extra=received.log_fields(),
            )
            return RetryCause.PARKING_FAILED

        await self._retrier.run(
            lambda: self._transaction.park(received, reason, attempts, self._clock()),
            parking_failed,
            f"parking {source}",
        )
        self.unanswered.pop(source, None)
        log.warning(
            "parked %s in the dead-letter topic: %s", source, reason, extra=received.log_fields()
        )
        return Outcome.PARKED

    def _report_refusal(self, received: Received[C], outcome: Outcome) -> None:
        """A message refused at the gate or invalid, answered just now (not a repeat)."""
        parsed = received.parsed
        if isinstance(parsed, Unauthorized) and outcome is Outcome.REJECTED:
            self._observer.refused(self._family.name, parsed.cause)
            limit_key = f"gate/{self._family.name}/{parsed.cause.value}"
        elif isinstance(parsed, InvalidCommand) and outcome is Outcome.DEAD_LETTERED:
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
