"""Dry runs: decided set-based per batch, in memory, against the state as it is; what each
would have done is published as a preview, and nothing else is written.

Not even inside a transaction that is rolled back: a rolled-back write still reaches the WAL,
and with it the personal data a dry run carries, sealed under data keys no erasure would know
of (I6). So the deciders run through a unit of work that reads Postgres and writes nothing
(`UnitOfWork.previewing`), in one transaction, always rolled back, that serves only to hold the
locks a real command would take while its reads are made. Each preview is decided against the
state as it is, never against what another preview of the batch would have done: the batch's
dry runs are decided in rounds in which a document appears at most once. At most `limit` dry
runs of a batch are decided; the rest are answered `rate_limited`, so previews, which anyone
with a token can send and which leave no trace, cannot be used to load the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from service.app.answers import Answers
from service.app.auth import Unauthorized
from service.app.family import BatchDecider, Decided
from service.app.observer import RetryCause
from service.app.parse import ValidCommand
from service.app.ports import OutboxMessage, Outcome, Store, UnitOfWork
from service.app.received import Received
from service.app.retry import Retrier
from service.app.token_uses import bind_tokens
from service.domain.problems import ErrorCode, Problem
from service.errors import TransientError

log = logging.getLogger(__name__)
C = TypeVar("C")


class Previews(Generic[C]):
    def __init__(
        self,
        store: Store,
        decider: BatchDecider[C],
        answers: Answers[C],
        clock: Callable[[], datetime],
        retrier: Retrier,
        *,
        limit: int,
    ) -> None:
        self._store = store
        self._decider = decider
        self._answers = answers
        self._clock = clock
        self._retrier = retrier
        self._limit = limit

    async def answer(self, dry_runs: list[Received[C]]) -> list[Outcome]:
        """Publish a preview for every dry run. Nothing else is written, not even the inbox (a
        preview can be asked for again and again); only the use of its token, so that a token
        read off the topic carries no other request."""
        now = self._clock()
        commands = [_command(received) for received in dry_runs]
        chosen = commands[: self._limit]
        decided = await self._decide(chosen, now) + [
            self._limited(cmd, now) for cmd in commands[self._limit :]
        ]
        family = self._decider.family

        async def publish() -> list[Outcome]:
            async with self._store.unit_of_work() as uow:
                bound = await bind_tokens(uow, family.name, dry_runs)
                previews: list[OutboxMessage] = []
                for received, cmd, outcome in zip(bound, commands, decided, strict=True):
                    if isinstance(received.parsed, Unauthorized):
                        outcome = self._answers.preview_refused(
                            cmd, received.parsed.problems[0], now
                        )
                    previews += self._answers.preview(received, cmd, outcome, now)
                await uow.answer_many([], previews)
            return [Outcome.PREVIEWED] * len(dry_runs)

        return await self._retrier.run(publish, _transient, "queueing previews")

    async def _decide(self, commands: list[ValidCommand[C]], now: datetime) -> list[Decided]:
        async def rounds() -> list[Decided]:
            decided: dict[int, Decided] = {}
            async with self._store.trial_unit_of_work() as trial:
                for round_ in _rounds(commands):
                    decided |= await self._decide_round(trial, commands, round_, now)
            return [decided[i] for i in range(len(commands))]

        return await self._retrier.run(rounds, _transient, "previewing")

    async def _decide_round(
        self, trial: UnitOfWork, commands: list[ValidCommand[C]], round_: list[int], now: datetime
    ) -> dict[int, Decided]:
        try:
            async with trial.previewing() as uow:
                decided = await self._decider.decide(uow, [commands[i] for i in round_], now)
            return dict(zip(round_, decided, strict=True))
        except TransientError:
            raise
        except Exception:
            if len(round_) == 1:
                return {round_[0]: await self._failed(commands[round_[0]], now)}
        # One of them fails for an unexpected reason: decide each alone, so only it says so.
        alone: dict[int, Decided] = {}
        for i in round_:
            alone |= await self._decide_round(trial, commands, [i], now)
        return alone

    async def _failed(self, cmd: ValidCommand[C], now: datetime) -> Decided:
        if not await self._store.reachable():
            raise TransientError("the database stopped answering while previewing")
        # A preview is never parked: it says the command could not be processed.
        log.error("unexpected failure previewing %s", cmd.command_id, exc_info=True)
        problem = Problem(
            ErrorCode.PROCESSING_FAILED,
            "the service could not preview this command; nothing changed",
            None,
        )
        return self._answers.preview_refused(cmd, problem, now)

    def _limited(self, cmd: ValidCommand[C], now: datetime) -> Decided:
        problem = Problem(
            ErrorCode.RATE_LIMITED,
            f"the service previews at most {self._limit} commands of a batch; this one was not"
            " decided: send it again",
            None,
        )
        return self._answers.preview_refused(cmd, problem, now)


async def _transient(error: Exception) -> RetryCause | None:
    return RetryCause.TRANSIENT if isinstance(error, TransientError) else None


def _command(received: Received[C]) -> ValidCommand[C]:
    assert isinstance(received.parsed, ValidCommand), "only admitted commands are previewed"
    return received.parsed


def _rounds(commands: Sequence[ValidCommand[C]]) -> list[list[int]]:
    """Positions of the commands in rounds where each document appears at most once, in order:
    the n-th dry run of a document goes to the n-th round."""
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, cmd in enumerate(commands):
        key = (cmd.tenant_id, cmd.document_id)
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds
