"""The document kernel: one batch decider for every family.

A family supplies its rules (`DocumentRules`): how to decide a command against a document's
state, how events change that state, what the world is told of each event (the wire event, the
snapshot history keeps and the state its compacted state topic shows), and which stock it
moves. The kernel runs the loop they share: load every document a batch touches in one go,
decide each command in offset order against the state its predecessors left, fold accepted
events into new states, and write the final states, versions and tombstones in a few
statements, building the messages while Postgres executes them; stock items moved are locked
last, so their movements queue in commit order per item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel

from contracts.inventory import movement_key
from service.app.family import Decided, EventRef, Family
from service.app.messages import (
    WireEvent,
    event_actor,
    event_message,
    movement_message,
    movement_source,
    rejection_message,
)
from service.app.overlap import while_waiting
from service.app.parse import ValidCommand
from service.app.ports import (
    Changes,
    DocumentKey,
    DocumentRepository,
    HistoryEntry,
    OutboxMessage,
    UnitOfWork,
    Version,
)
from service.app.state_topic import StateRules, state_message
from service.app.wire_json import Fields, Written, in_field_order, literal_type, wire_json
from service.domain.decisions import Accepted, Rejected, Transition
from service.domain.documents import Document
from service.domain.problems import Problem
from service.domain.stock import Movement
from service.domain.values import frozen

C = TypeVar("C")
S = TypeVar("S", bound=Document)
E = TypeVar("E")
S_in = TypeVar("S_in", bound=Document, contravariant=True)

Decision = Accepted[Any] | Rejected


class RunDecider(Protocol[C, S_in]):
    """Decides the commands of one run against what the run preloaded (voucher holders, erased
    customers, ...), and keeps that view current as the run's commands change it."""

    def decide(self, cmd: ValidCommand[C], current: S_in | None) -> Decision: ...

    def accepted(self, before: S_in | None, after: S_in) -> None:
        """A command of the run took `before` to `after`."""


class AloneDecider(Protocol[C]):
    """Decides a command that reaches beyond its own document (customer.redact: all of a
    customer's orders) between the runs around it; adds the stock items it moves to
    `stock_keys`."""

    async def __call__(
        self,
        kernel: DocumentDecider[C],
        uow: UnitOfWork,
        cmd: ValidCommand[C],
        now: datetime,
        stock_keys: set[str],
    ) -> Decided: ...


@frozen
class Stateless(Generic[C, S]):
    """A run decider for families whose decisions need nothing but the document."""

    decide_one: Callable[[C, S | None, str], Decision]

    def decide(self, cmd: ValidCommand[C], current: S | None) -> Decision:
        return self.decide_one(cmd.command, current, cmd.document_id)

    def accepted(self, before: S | None, after: S) -> None:
        return None


BeginRun = Callable[
    [UnitOfWork, DocumentRepository[S], Sequence[ValidCommand[C]], dict[DocumentKey, S]],
    Awaitable[RunDecider[C, S]],
]
"""Starts deciding a run: given the run's commands and their loaded documents, preloads what
the decisions need besides the documents. (Its type arguments go in order of appearance:
BeginRun[S, C].)"""


@frozen
class DocumentRules(Generic[C, S, E]):
    """Everything about a family the kernel does not know: pure functions, and the preloads
    and special commands of families that need them."""

    begin_run: BeginRun[S, C]
    fold: Callable[[S | None, Sequence[E], str, str], Sequence[Transition[E, S]]]
    """The domain's evolve over events: (current, events, tenant_id, document_id)."""
    wire_event: Callable[[Transition[E, S], Written | None], EventParts]
    """The event to publish for a transition, given the snapshot as written (None once
    deleted): its contract model and its data; the kernel adds the metadata every event
    carries."""
    snapshot: Callable[[S], Fields]
    """What history keeps of a live document, and what the stored document is: the fields of
    the family's snapshot model, in its order (service/app/wire_json.py)."""
    movements: Callable[[S | None, S], Sequence[Movement]]
    movement_source: str
    """What inventory movements name as their source's type, e.g. 'purchase_order'."""
    state: StateRules[S] | None = None
    """What the family's compacted state topic holds (service/app/state_topic.py); None: nothing,
    the topic stays empty."""
    reads_personal_data: Callable[[C], bool] = lambda _: True
    """Whether deciding a command reads its document's personal data. When no command of a
    run does, the run's documents are loaded with that data left sealed."""
    alone: Callable[[C], bool] = lambda _: False
    """Whether a command is decided on its own, by `decide_alone`, between runs."""
    decide_alone: AloneDecider[C] | None = None


class EventParts(NamedTuple):
    """What a family says of an event; the kernel adds the metadata every event carries."""

    model: type[BaseModel]
    """The event's contract model: its `type`, and the order of its fields."""
    data: Fields | Written
    """Its `data`, laid out as the model's `data` field is (or the snapshot as written)."""


def stateless(decide_one: Callable[[C, S | None, str], Decision]) -> BeginRun[S, C]:
    """`begin_run` for families that preload nothing."""

    async def begin(*_: object) -> RunDecider[C, S]:
        return Stateless(decide_one)

    return begin


@dataclass
class Output(Generic[S]):
    """What a command's events produce: the final state and the versions it left (`draft`),
    then the messages and the stock items it moved (`build_messages`)."""

    final: S
    versions: list[Version[S]] = field(default_factory=list)
    drafted: list[Drafted[S]] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)
    stock_keys: list[str] = field(default_factory=list)
    events: list[EventRef] = field(default_factory=list)


class Drafted(NamedTuple, Generic[S]):
    """One transition as its version was written: what its messages are built from."""

    transition: Transition[Any, S]
    event_id: UUID
    event: EventParts
    snapshot: Written | None


class DocumentDecider(Generic[C]):
    """Decides a batch of one family's commands set-based, inside the caller's transaction.

    The processor has already claimed the commands and locked their documents. Commands a
    family decides alone split the batch into runs; each run is loaded, decided in memory and
    written in a few statements, whatever its size.
    """

    def __init__(
        self,
        family: Family[C],
        movements_topic: str,
        new_event_id: Callable[[], UUID] = uuid4,
        derived_id: Callable[[UUID, str], UUID] = uuid5,
    ) -> None:
        """`new_event_id` makes a random id, `derived_id` a name-based one (a movement's, from its
        event's); a faster kind of UUID than the standard library's may be passed for either."""
        self._family = family
        self._rules: DocumentRules[C, Any, Any] = family.rules
        self._movements_topic = movements_topic
        self._new_event_id = new_event_id
        self._derived_id = derived_id

    @property
    def family(self) -> Family[C]:
        return self._family

    def new_event_id(self) -> UUID:
        """An event id, made as every event id of this decider is (a receipt's too)."""
        return self._new_event_id()

    def repository(self, uow: UnitOfWork) -> DocumentRepository[Any]:
        return uow.documents(self._family.kind)

    async def decide(
        self, uow: UnitOfWork, commands: Sequence[ValidCommand[C]], now: datetime
    ) -> list[Decided]:
        decided: list[Decided] = []
        stock_keys: set[str] = set()
        for run in self._runs(commands):
            first = run[0]
            if self._rules.alone(first.command):
                assert self._rules.decide_alone is not None, "alone commands need a decider"
                decided.append(await self._rules.decide_alone(self, uow, first, now, stock_keys))
            else:
                decided += await self._decide_run(uow, run, now, stock_keys)
        # Movements of one stock item queue in commit order: writers of an item serialise.
        await uow.lock_stock_items(sorted(stock_keys))
        return decided

    async def _decide_run(
        self,
        uow: UnitOfWork,
        run: Sequence[ValidCommand[C]],
        now: datetime,
        stock_keys: set[str],
    ) -> list[Decided]:
        repository = self.repository(uow)
        keys = sorted({_key(cmd) for cmd in run})
        opened = any(self._rules.reads_personal_data(cmd.command) for cmd in run)
        states = await repository.load_many(keys, personal_data=opened)
        changes: Changes[Any] = Changes(dict(states))
        deciding: RunDecider[C, Any] = await self._rules.begin_run(uow, repository, run, states)
        # Accepted commands wait as drafts until their messages are built.
        outcomes: list[Decided | tuple[ValidCommand[C], Output[Any]]] = []
        for cmd in run:
            key = _key(cmd)
            current = states.get(key)
            decision = deciding.decide(cmd, current)
            if isinstance(decision, Rejected):
                outcomes.append(self.rejected(cmd, decision.problems, now))
                continue
            transitions = self._rules.fold(current, decision.events, *key)
            output = self.draft(cmd, transitions, now)
            states[key] = output.final
            changes.record(output.final, output.versions)
            deciding.accepted(current, output.final)
            outcomes.append((cmd, output))

        def with_messages() -> list[Decided]:
            decided = []
            for outcome in outcomes:
                if not isinstance(outcome, Decided):
                    cmd, output = outcome
                    self.build_messages(cmd, output, now)
                    stock_keys.update(output.stock_keys)
                    outcome = Decided(True, output.messages, output.events)
                decided.append(outcome)
            return decided

        # The messages are built while Postgres executes the save's first statement (a
        # document family's whole save; a socket that cannot take the statement at once holds
        # the rest until they are built): they need nothing the save returns, nor it of them.
        return await while_waiting(repository.save_many(changes), with_messages)

    def rejected(self, cmd: ValidCommand[C], problems: Sequence[Problem], now: datetime) -> Decided:
        rejection = rejection_message(self._family, cmd.identity, cmd.command_id, problems, now)
        return Decided(False, [rejection], problems=tuple(problems))

    def outputs(
        self, cmd: ValidCommand[C], transitions: Sequence[Transition[Any, S]], now: datetime
    ) -> Output[S]:
        """Per transition: its event, a version while the document lives, its movements (for a
        caller that saves them afterwards)."""
        output = self.draft(cmd, transitions, now)
        self.build_messages(cmd, output, now)
        return output

    def draft(
        self, cmd: ValidCommand[C], transitions: Sequence[Transition[Any, S]], now: datetime
    ) -> Output[S]:
        """What saving the transitions needs: each one's event id and snapshot, written once
        (history keeps it, and the events and state that carry it embed it), and its version
        while the document lives."""
        rules = self._rules
        output: Output[S] = Output(transitions[-1].after)
        for transition in transitions:
            after = transition.after
            event_id = self.new_event_id()
            snapshot_json = None if after.is_deleted else wire_json(rules.snapshot(after))
            snapshot = None if snapshot_json is None else Written(snapshot_json)
            event = rules.wire_event(transition, snapshot)
            output.drafted.append(Drafted(transition, event_id, event, snapshot))
            if snapshot_json is not None:
                entry = HistoryEntry(
                    after.version,
                    cmd.command_id,
                    event_id,
                    literal_type(event.model),
                    snapshot_json,
                    cmd.actor,
                )
                output.versions.append(Version(after, entry))
        return output

    def build_messages(self, cmd: ValidCommand[C], output: Output[S], now: datetime) -> None:
        """Fills `output` with each drafted transition's event, its state, its movements and
        the stock items they move."""
        rules = self._rules
        actor = event_actor(cmd.actor)
        id_field = self._family.commands.id_field
        for transition, event_id, (model, data), snapshot in output.drafted:
            after = transition.after
            tenant_id, document_id = after.tenant_id, after.document_id
            event_type = literal_type(model)
            body = in_field_order(
                model,
                {
                    "event_id": event_id,
                    "tenant_id": tenant_id,
                    "version": after.version,
                    "command_id": cmd.command_id,
                    "occurred_at": now,
                    "actor": actor,
                    id_field: document_id,
                    "type": event_type,
                    "data": data,
                },
            )
            event = WireEvent(event_type, event_id, now, wire_json(body))
            output.messages.append(event_message(self._family, document_id, event))
            output.events.append(EventRef(event_id, event_type, after.version, document_id))
            if rules.state is not None:
                # After its event, through the same outbox: states leave in version order.
                state = state_message(
                    rules.state,
                    self._family.topics.state,
                    id_field,
                    transition,
                    snapshot,
                    event_id,
                    event_type,
                    now,
                )
                if state is not None:
                    output.messages.append(state)
            moved = rules.movements(transition.before, after)
            if not moved:
                continue
            source = movement_source(rules.movement_source, document_id, after.version, event_id)
            for movement in moved:
                output.stock_keys.append(
                    movement_key(tenant_id, movement.warehouse_id, movement.sku)
                )
                output.messages.append(
                    movement_message(
                        self._movements_topic,
                        tenant_id,
                        movement,
                        source,
                        event_type,
                        now,
                        self._derived_id,
                    )
                )

    def _runs(self, commands: Sequence[ValidCommand[C]]) -> Iterator[Sequence[ValidCommand[C]]]:
        """The commands in order, as runs of ordinary commands and alone commands by
        themselves."""
        run: list[ValidCommand[C]] = []
        for cmd in commands:
            if self._rules.alone(cmd.command):
                if run:
                    yield run
                    run = []
                yield [cmd]
            else:
                run.append(cmd)
        if run:
            yield run


def _key(cmd: ValidCommand[Any]) -> DocumentKey:
    return (cmd.tenant_id, cmd.document_id)
