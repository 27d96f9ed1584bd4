"""Dry runs: each decided alone, against the current state, in a transaction that is rolled
back; what it would have done is published as a preview."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from service.app.family import BatchDecider, Decided
from service.app.observer import RetryCause
from service.app.outcomes import preview_message, rejection_message, with_trace_context
from service.app.parse import ValidCommand
from service.app.ports import OutboxMessage, Outcome, Store
from service.app.received import Received
from service.domain.problems import ErrorCode, Problem
from service.errors import TransientError

log = logging.getLogger(__name__)
C = TypeVar("C")


class Previews(Generic[C]):
    def __init__(
        self,
        store: Store,
        decider: BatchDecider[C],
        clock: Callable[[], datetime],
        retried: Callable[[RetryCause], None],
        back_off: Callable[[int], Awaitable[None]],
    ) -> None:
        self._store = store
        self._decider = decider
        self._clock = clock
        self._retried = retried
        self._back_off = back_off

    async def answer(self, dry_runs: list[Received[C]]) -> list[Outcome]:
        """Decide each dry run alone against the current state in a transaction that is rolled
        back, and publish what it would have done as a preview. Nothing else is written, not
        even the inbox: a preview can be asked for again and again."""
        previews: list[OutboxMessage] = []
        for received in dry_runs:
            cmd = received.parsed
            assert isinstance(cmd, ValidCommand)
            decided = await self._decide_trial(received, cmd)
            previews += with_trace_context(
                [preview_message(self._decider.family, cmd, decided, self._clock())],
                received.message.headers,
            )
        attempt = 0
        while True:
            try:
                async with self._store.unit_of_work() as uow:
                    await uow.answer_many([], previews)
                return [Outcome.PREVIEWED] * len(dry_runs)
            except TransientError as error:
                log.warning("transient failure queueing previews, retrying: %s", error)
                self._retried(RetryCause.TRANSIENT)
            await self._back_off(attempt)
            attempt += 1

    async def _decide_trial(self, received: Received[C], cmd: ValidCommand[C]) -> Decided:
        attempt = 0
        while True:
            try:
                async with self._store.trial_unit_of_work() as uow:
                    [decided] = await self._decider.decide(uow, [cmd], self._clock())
                return decided
            except TransientError as error:
                log.warning("transient failure previewing, retrying: %s", error)
                self._retried(RetryCause.TRANSIENT)
            except Exception as error:
                if await self._store.reachable():
                    # A preview is never parked: it says the command could not be processed.
                    log.error(
                        "unexpected failure previewing %s",
                        received.message.source,
                        exc_info=error,
                        extra=received.log_fields(),
                    )
                    problem = Problem(
                        ErrorCode.PROCESSING_FAILED,
                        "the service could not preview this command; nothing changed",
                        None,
                    )
                    rejection = rejection_message(
                        self._decider.family, cmd.identity, cmd.command_id, [problem], self._clock()
                    )
                    return Decided(False, [rejection])
                self._retried(RetryCause.DATABASE_UNREACHABLE)
            await self._back_off(attempt)
            attempt += 1
