"""One attempt at a batch: one transaction in which every outcome commits, or none does.

In order: tokens are bound to their requests; replays of set-aside commands are reopened; the
messages not admitted that name a command_id an admitted command holds are found (they get no
answer in its name); every message is claimed in the inbox; the documents of new commands are
locked; refused and invalid messages are set aside (sealed) before anything is decided, so an
erasure in the same batch destroys their letters' keys too, whatever their order in it; the
family's decider decides the new commands; and every answer is queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from service.app.answers import Answers, not_processed_problem, reused_key_problem
from service.app.auth import Unauthorized
from service.app.family import BatchDecider
from service.app.parse import InvalidCommand, ValidCommand
from service.app.ports import Answer, Claim, OutboxMessage, Outcome, Store, UnitOfWork
from service.app.received import Received, command_key
from service.app.replies import Summary, stored_fields
from service.app.token_uses import bind_tokens

C = TypeVar("C")


class BatchTransaction(Generic[C]):
    def __init__(self, store: Store, decider: BatchDecider[C], answers: Answers[C]) -> None:
        self._store = store
        self._decider = decider
        self._answers = answers
        self._family = decider.family.name

    async def decide(self, batch: Sequence[Received[C]], now: datetime) -> list[Outcome]:
        """Every message's outcome, committed; raises (nothing committed) when any step does."""
        for received in batch:
            if received.defect is not None:
                raise received.defect
        family = self._family
        async with self._store.unit_of_work() as uow:
            batch = await bind_tokens(uow, family, batch)
            keys = [r.inbox_key(family) for r in batch]
            await uow.reopen_for_replay(
                [key for key, r in zip(keys, batch, strict=True) if r.is_replay and r.admitted]
            )
            taken = await self._taken_command_ids(uow, batch)
            # A refused copy of a decided command is that command again: no second answer.
            copies = {
                i
                for i, stored in taken.items()
                if isinstance(batch[i].parsed, Unauthorized) and stored == batch[i].request_hash
            }
            claimed = iter(
                await uow.claim_many(
                    [(keys[i], r.request_hash) for i, r in enumerate(batch) if i not in copies]
                )
            )
            claims = [Claim.DUPLICATE if i in copies else next(claimed) for i in range(len(batch))]
            new_commands = [
                r.parsed
                for r, claim in zip(batch, claims, strict=True)
                if claim is Claim.NEW and isinstance(r.parsed, ValidCommand)
            ]
            await uow.lock_documents([(c.tenant_id, c.document_id) for c in new_commands])
            invalid = {
                i: await self._set_aside(uow, received, now, answered=i not in taken)
                for i, (received, claim) in enumerate(zip(batch, claims, strict=True))
                if claim is Claim.NEW and isinstance(received.parsed, InvalidCommand)
            }
            decisions = iter(await self._decider.decide(uow, new_commands, now))
            answers: list[Answer] = []
            reuses: list[OutboxMessage] = []
            """Answers that change no inbox outcome."""
            outcomes: list[Outcome] = []
            summaries: dict[str, Summary] = {}
            """What replies say of the keys answered in this batch."""
            repeats: list[Received[C]] = []
            """Duplicates that asked for a reply: answered from what their key recorded."""
            for i, (received, claim, key) in enumerate(zip(batch, claims, keys, strict=True)):
                parsed = received.parsed
                # Never an answer in the name of a command_id that an admitted command holds:
                # it would reach that command's sender as if it were theirs.
                answered = i not in taken
                if claim is not Claim.NEW:
                    outcome = await self._repeat(uow, claim, received, now, reuses)
                    if answered and received.reply is not None:
                        if claim is Claim.DUPLICATE:
                            repeats.append(received)
                        else:
                            reuses += self._reused_reply(received, outcome, now)
                    outcomes.append(outcome)
                    continue
                if isinstance(parsed, ValidCommand):
                    decided = next(decisions)
                    outcome = Outcome.ACCEPTED if decided.accepted else Outcome.REJECTED
                    summary = Summary(outcome, decided.events, decided.problems)
                    messages = self._answers.decided(received, decided)
                elif isinstance(parsed, Unauthorized):
                    outcome = Outcome.REJECTED
                    summary = Summary(outcome, problems=parsed.problems)
                    messages = self._answers.refusal(received, now) if answered else []
                else:
                    outcome = Outcome.DEAD_LETTERED
                    assert isinstance(parsed, InvalidCommand)
                    summary = Summary(outcome, problems=parsed.problems)
                    messages = invalid[i]
                if answered:
                    messages = [*messages, *self._answers.reply(received, summary.fields, now)]
                summaries[key] = summary
                # Kept only for a command that asked for a reply: a re-send of it is answered
                # in full, any other with its outcome alone.
                stored = summary.stored() if received.reply is not None else None
                answers.append(Answer(key, outcome, messages, stored))
                outcomes.append(outcome)
            reuses += await self._repeat_replies(uow, repeats, summaries, now)
            await uow.answer_many(answers, reuses)
        return outcomes

    async def park(self, received: Received[C], reason: str, attempts: int, now: datetime) -> None:
        """Set a message that cannot be processed aside for good: a dead letter, and a
        rejection when its command_id can be read, so its sender is not left waiting."""
        key = received.inbox_key(self._family)
        async with self._store.unit_of_work() as uow:
            if received.is_replay and received.admitted:
                await uow.reopen_for_replay([key])
            # As in a batch: no answer in the name of a command_id an admitted command holds.
            answered = not await self._taken_command_ids(uow, [received])
            [claim] = await uow.claim_many([(key, received.request_hash)])
            if claim is Claim.NEW:
                summary = Summary(Outcome.PARKED, problems=[not_processed_problem(attempts)])
                rejection = self._answers.not_processed(received, attempts, now)
                reply = self._answers.reply(received, summary.fields, now)
                parked = [
                    *(rejection if answered else []),
                    await self._dead_letter(uow, received, reason),
                    *(reply if answered else []),
                ]
                stored = summary.stored() if received.reply is not None else None
                await uow.answer_many([Answer(key, Outcome.PARKED, parked, stored)])

    async def _taken_command_ids(
        self, uow: UnitOfWork, batch: Sequence[Received[C]]
    ) -> dict[int, bytes | None]:
        """The messages not admitted (refused or invalid) whose command_id an admitted command
        holds in their family and tenant, with the request hash it was claimed with (None when
        it is claimed in this very batch)."""
        family = self._family
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

    async def _set_aside(
        self, uow: UnitOfWork, received: Received[C], now: datetime, *, answered: bool
    ) -> list[OutboxMessage]:
        """An invalid message: a rejection if `answered` (and its command_id is readable), and
        its dead letter."""
        invalid = received.parsed
        assert isinstance(invalid, InvalidCommand)
        rejection = self._answers.rejection(received, invalid.problems, now) if answered else []
        return [*rejection, await self._dead_letter(uow, received, invalid.reason)]

    async def _repeat(
        self,
        uow: UnitOfWork,
        claim: Claim,
        received: Received[C],
        now: datetime,
        repeats: list[OutboxMessage],
    ) -> Outcome:
        """A key seen before: a faithful re-send changes nothing; a reused key is refused once."""
        if claim is Claim.DUPLICATE or received.identity.command_id is None:
            return Outcome.DUPLICATE
        if not received.admitted:
            return Outcome.DUPLICATE
        if not await uow.claim_reuse(received.inbox_key(self._family), received.request_hash):
            return Outcome.DUPLICATE
        repeats += self._answers.reused_key(received, now)
        return Outcome.REJECTED

    def _reused_reply(
        self, received: Received[C], outcome: Outcome, now: datetime
    ) -> list[OutboxMessage]:
        """The reply to a reused command_id: refused, and a repeat once it was refused before."""
        refused = Summary(Outcome.REJECTED, problems=[reused_key_problem(received)])
        repeat = outcome is Outcome.DUPLICATE
        return self._answers.reply(received, refused.fields, now, repeat=repeat)

    async def _repeat_replies(
        self,
        uow: UnitOfWork,
        repeats: Sequence[Received[C]],
        summaries: dict[str, Summary],
        now: datetime,
    ) -> list[OutboxMessage]:
        """The replies to duplicates: the outcome their key recorded (in this batch or before),
        marked as a repeat."""
        if not repeats:
            return []
        keys = [r.inbox_key(self._family) for r in repeats]
        stored = await uow.stored_answers([key for key in keys if key not in summaries])
        replies: list[OutboxMessage] = []
        for received, key in zip(repeats, keys, strict=True):
            if key in summaries:
                fields = summaries[key].fields
            elif key in stored:
                answer = stored[key]
                fields = partial(stored_fields, answer.outcome, answer.summary)
            else:
                continue  # not recorded: a duplicate of nothing this service answered
            replies += self._answers.reply(received, fields, now, repeat=True)
        return replies

    async def _dead_letter(
        self, uow: UnitOfWork, received: Received[C], reason: str
    ) -> OutboxMessage:
        if not self._answers.seals_dead_letter(received):
            return self._answers.dead_letter(received, reason)
        sealed = await uow.seal_dead_letter(*self._answers.seal_request(received))
        return self._answers.dead_letter(received, reason, sealed)
