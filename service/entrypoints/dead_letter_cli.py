"""`order-service dead-letters`: list, replay and purge what the service set aside.

Nothing personal is printed unless asked for with --show; sealed letters (customer orders) are
opened with the master key, and a letter whose key is gone is gone, which the tool says.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import typer

from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.crypto import MasterKey
from service.adapters.dead_letters import (
    DeadLetter,
    Original,
    open_letter,
    purge,
    read_dead_letters,
    replay,
)
from service.settings import Settings

app = typer.Typer(no_args_is_help=True, help=__doc__)

FamilyOption = Annotated[
    str | None,
    typer.Option("--family", help="purchase-orders or orders; default: both"),
]
AtOption = Annotated[
    list[str] | None,
    typer.Option("--at", help="a letter's PARTITION/OFFSET, as `list` prints it (repeatable)"),
]
RangeOption = Annotated[
    str | None, typer.Option("--range", help="PARTITION/FIRST-LAST, offsets inclusive")
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="letters whose reason contains this text")
]
AllOption = Annotated[bool, typer.Option("--all", help="every letter not yet purged")]


@dataclass(frozen=True)
class Selection:
    """Which letters a replay or purge acts on; at least one criterion must be given."""

    at: frozenset[tuple[int, int]]
    ranges: tuple[tuple[int, int, int], ...]
    reason: str | None
    everything: bool

    @classmethod
    def parse(
        cls, at: Sequence[str] | None, span: str | None, reason: str | None, everything: bool
    ) -> Selection:
        positions = frozenset(_position(text) for text in at or ())
        ranges: tuple[tuple[int, int, int], ...] = ()
        if span is not None:
            match = re.fullmatch(r"(\d+)/(\d+)-(\d+)", span)
            if match is None:
                raise typer.BadParameter(
                    f"{span!r} is not PARTITION/FIRST-LAST", param_hint="--range"
                )
            ranges = ((int(match[1]), int(match[2]), int(match[3])),)
        if not (positions or ranges or reason or everything):
            raise typer.BadParameter("say which letters: --at, --range, --reason or --all")
        return cls(positions, ranges, reason, everything)

    def __call__(self, letter: DeadLetter) -> bool:
        if "purged" in letter.actions:
            return False
        if self.everything:
            return True
        if (letter.partition, letter.offset) in self.at:
            return True
        if any(p == letter.partition and lo <= letter.offset <= hi for p, lo, hi in self.ranges):
            return True
        return self.reason is not None and self.reason in letter.reason


def _position(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not PARTITION/OFFSET", param_hint="--at")
    return int(match[1]), int(match[2])


def _families(settings: Settings, family: str | None) -> list[DocumentTopics]:
    names = (PURCHASE_ORDERS, ORDERS)
    if family is not None and family not in names:
        raise typer.BadParameter(f"{family!r} is none of {', '.join(names)}", param_hint="--family")
    return [
        DocumentTopics.for_family(name, settings.topic_prefix)
        for name in names
        if family in (None, name)
    ]


def _settings() -> Settings:
    from service.entrypoints.cli import _settings as configured

    return configured()


async def _letters(
    settings: Settings, db: asyncpg.Connection, family: str | None
) -> list[tuple[DocumentTopics, DeadLetter]]:
    connection = settings.kafka_connection()
    found = []
    for topics in _families(settings, family):
        letters = await read_dead_letters(connection, topics.dead_letters, db)
        found += [(topics, letter) for letter in letters]
    return found


def _run(work: Callable[[Settings, asyncpg.Connection], Awaitable[None]]) -> None:
    settings = _settings()

    async def go() -> None:
        db = await asyncpg.connect(settings.database_url)
        try:
            await work(settings, db)
        finally:
            await db.close()

    asyncio.run(go())


class _Opener:
    """Opens letters, loading the master key only when a sealed one needs it."""

    def __init__(self, settings: Settings, db: asyncpg.Connection) -> None:
        self._settings, self._db = settings, db
        self._master: MasterKey | None = None

    async def __call__(self, letter: DeadLetter) -> Original | None:
        if letter.sealed_key_id is not None and self._master is None:
            self._master = self._settings.load_master_key()
        return await open_letter(self._db, self._master, letter)


GONE = "gone: its key was destroyed (expired, purged, or the customer erased)"


def _describe(topics: DocumentTopics, letter: DeadLetter) -> str:
    state = ", ".join(f"{action} {when:%Y-%m-%d %H:%M}" for action, when in letter.actions.items())
    kind = "sealed" if letter.sealed_key_id is not None else "plain"
    return (
        f"{topics.dead_letters} {letter.position}  age {_age(letter.age_seconds())}  {kind}"
        f"{'  ' + state if state else ''}\n  from {letter.source}\n  reason: {letter.reason[:300]}"
    )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _text(raw: bytes | None) -> str:
    if raw is None:
        return "(none)"
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return repr(raw)


@app.command("list")
def list_letters(
    family: FamilyOption = None,
    show: Annotated[
        bool,
        typer.Option("--show", help="print each message as it arrived (may hold personal data)"),
    ] = False,
    include_purged: Annotated[bool, typer.Option("--all", help="purged letters too")] = False,
) -> None:
    """Every letter: where it is, how old, sealed or plain, why, where it came from, what was
    done with it."""

    async def work(settings: Settings, db: asyncpg.Connection) -> None:
        letters = await _letters(settings, db, family)
        shown = [
            (topics, letter)
            for topics, letter in letters
            if include_purged or "purged" not in letter.actions
        ]
        opener = _Opener(settings, db)
        for topics, letter in shown:
            typer.echo(_describe(topics, letter))
            if not show:
                continue
            original = await opener(letter)
            if original is None:
                typer.echo(f"  {GONE}")
            else:
                typer.echo(f"  key: {_text(original.key)}\n  value: {_text(original.value)}")
        typer.echo(f"{len(shown)} dead letters", err=True)

    _run(work)


@app.command("replay")
def replay_letters(
    family: FamilyOption = None,
    at: AtOption = None,
    span: RangeOption = None,
    reason: ReasonOption = None,
    everything: AllOption = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ORDER_SERVICE_TOKEN",
            help="actor token to send them with (needed when the service requires tokens)",
        ),
    ] = None,
) -> None:
    """Publish letters again to their commands topic, as they arrived, with a header naming
    where they were parked. A command that was only dead-lettered or parked is then decided; one
    that was decided meanwhile is not decided twice."""
    chosen = Selection.parse(at, span, reason, everything)

    async def work(settings: Settings, db: asyncpg.Connection) -> None:
        opener = _Opener(settings, db)
        replayed = 0
        for topics, letter in await _letters(settings, db, family):
            if not chosen(letter):
                continue
            original = await opener(letter)
            if original is None:
                typer.echo(
                    f"{topics.dead_letters} {letter.position}: {GONE}; not replayed", err=True
                )
                continue
            await replay(
                settings.kafka_connection(), topics.commands, db, [(letter, original)], token
            )
            typer.echo(f"replayed {topics.dead_letters} {letter.position} to {topics.commands}")
            replayed += 1
        typer.echo(f"{replayed} replayed", err=True)

    _run(work)


@app.command("purge")
def purge_letters(
    family: FamilyOption = None,
    at: AtOption = None,
    span: RangeOption = None,
    reason: ReasonOption = None,
    everything: AllOption = False,
) -> None:
    """Mark letters purged: `list` no longer shows them, and sealed ones lose their key, so
    nothing of them can be read again. Kafka keeps the records until the topic's retention."""
    chosen = Selection.parse(at, span, reason, everything)

    async def work(settings: Settings, db: asyncpg.Connection) -> None:
        letters = [letter for _, letter in await _letters(settings, db, family) if chosen(letter)]
        destroyed = await purge(db, letters)
        typer.echo(f"{len(letters)} purged, {destroyed} sealing keys destroyed")

    _run(work)
