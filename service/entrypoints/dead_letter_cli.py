"""`order-service dead-letters`: list, replay and purge what the service set aside.

Nothing personal is printed unless asked for with --show; sealed letters (customer orders) are
opened with the master key, and a letter whose key is gone is gone, which the tool says. Every
letter is checked for the service's signature (its signing key is kept wrapped by the master
key): anyone who
can write to a dead-letter topic can put a record there, and those are listed as NOT AUTHENTIC
and never replayed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import asyncpg
import typer

from contracts.topics import DocumentTopics
from service.adapters.crypto import Keyring
from service.adapters.dead_letters import (
    DeadLetter,
    Original,
    letter_signer,
    open_letter,
    purge,
    read_dead_letters,
    replay,
)
from service.app.ports import Claims
from service.app.provenance import Signer
from service.domain.values import frozen
from service.entrypoints.configured import tool_settings
from service.entrypoints.families import registered
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
OperatorOption = Annotated[
    str | None,
    typer.Option(
        "--operator",
        help="who does this, as recorded beside the letter and named on a replay;"
        " default: $USER, else 'operator'",
    ),
]


def _operator(given: str | None) -> str:
    name = (given if given is not None else os.environ.get("USER") or "operator").strip()
    # It is recorded and sent in a signed header: keep it a short, printable name.
    if not name or len(name) > 200 or not name.isprintable():
        raise typer.BadParameter(
            "a printable name of at most 200 characters", param_hint="--operator"
        )
    return name


@frozen
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
    families = registered(settings)
    names = [f.name for f in families]
    if family is not None and family not in names:
        raise typer.BadParameter(f"{family!r} is none of {', '.join(names)}", param_hint="--family")
    return [f.topics for f in families if family in (None, f.name)]


async def _signer(settings: Settings, db: asyncpg.Connection) -> Signer:
    """The service's letter signer: every command checks signatures, so every one needs the
    master key (the signing key is kept wrapped by it)."""
    return await letter_signer(db, settings.load_master_key())


async def _letters(
    settings: Settings, db: asyncpg.Connection, family: str | None, signer: Signer
) -> list[tuple[DocumentTopics, DeadLetter]]:
    connection = settings.kafka_connection()
    found = []
    for topics in _families(settings, family):
        letters = await read_dead_letters(connection, topics.dead_letters, db, signer)
        found += [(topics, letter) for letter in letters]
    return found


def _run(work: Callable[[Settings, asyncpg.Connection], Awaitable[None]]) -> None:
    settings = tool_settings()

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
        self._master: Keyring | None = None

    async def __call__(self, letter: DeadLetter) -> Original | None:
        if letter.sealed_key_id is not None and self._master is None:
            self._master = self._settings.load_master_key()
        return await open_letter(self._db, self._master, letter)


GONE = "gone: its key was destroyed (expired, purged, or the customer erased)"
NOT_AUTHENTIC = "NOT AUTHENTIC: not written by this service (no valid signature)"


def _describe(topics: DocumentTopics, letter: DeadLetter) -> str:
    state = ", ".join(
        f"{action} {when:%Y-%m-%d %H:%M}"
        + (f" by {letter.operators[action]}" if action in letter.operators else "")
        for action, when in letter.actions.items()
    )
    kind = "sealed" if letter.sealed_key_id is not None else "plain"
    # A letter that is not authentic may say anything in its headers, reason and source
    # included; it is listed so that operators see it, with the warning first.
    origin = "authentic" if letter.authentic else f"{NOT_AUTHENTIC}; replay refuses it"
    return (
        f"{topics.dead_letters} {letter.position}  age {_age(letter.age_seconds())}  {kind}"
        f"{'  ' + state if state else ''}\n  {origin}\n  authority: {_authority(letter)}"
        f"\n  from {_printable(letter.source)}\n  reason: {_printable(letter.reason[:300])}"
    )


def _printable(text: str) -> str:
    # Control characters escaped: a reason may quote a sender's text, and a letter the service
    # did not write may say anything, e.g. a line break and "  authentic" to look like one.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _authority(letter: DeadLetter) -> str:
    if not letter.authentic:
        return "none (the letter is not authentic: nothing it records is trusted)"
    return _claims(letter.authority)


def _claims(claims: Claims | None) -> str:
    if claims is None:
        return "none (not admitted on a token)"
    return f"{claims.role or '(no role)'}:{claims.subject} (issuer {claims.issuer})"


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
        letters = await _letters(settings, db, family, await _signer(settings, db))
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
            if not letter.authentic:
                # Nothing of the service's to open: whatever it claims, show the bytes as they
                # are on the topic (never unseal what someone else wrote with our keys).
                typer.echo(f"  key: {_text(letter.key)}\n  value: {_text(letter.value)}")
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
    operator: OperatorOption = None,
) -> None:
    """Publish letters again to their commands topic, as they arrived, with signed headers
    naming where they were parked, the authority they were admitted with and the operator. A
    command that was only dead-lettered or parked is then decided, with no more authority than
    its sender had; one that was decided meanwhile is not decided twice. Letters this service
    did not write (NOT AUTHENTIC) are refused, and then the exit status is 1."""
    chosen = Selection.parse(at, span, reason, everything)
    replayed_by = _operator(operator)
    refused: list[str] = []

    async def work(settings: Settings, db: asyncpg.Connection) -> None:
        signer = await _signer(settings, db)
        opener = _Opener(settings, db)
        replayed = 0
        for topics, letter in await _letters(settings, db, family, signer):
            if not chosen(letter):
                continue
            where = f"{topics.dead_letters} {letter.position}"
            if not letter.authentic:
                # Anyone who can write to the topic could have put it there; replaying it
                # would let them send a command under this service's name.
                typer.echo(f"{where}: {NOT_AUTHENTIC}; refused, not replayed", err=True)
                refused.append(where)
                continue
            original = await opener(letter)
            if original is None:
                typer.echo(f"{where}: {GONE}; not replayed", err=True)
                continue
            await replay(
                settings.kafka_connection(),
                topics.commands,
                db,
                [(letter, original)],
                signer,
                replayed_by,
            )
            typer.echo(
                f"replayed {where} to {topics.commands} with authority {_claims(letter.authority)}"
            )
            replayed += 1
        typer.echo(f"{replayed} replayed", err=True)

    _run(work)
    if refused:
        typer.echo(f"{len(refused)} refused (not authentic)", err=True)
        raise typer.Exit(1)


@app.command("purge")
def purge_letters(
    family: FamilyOption = None,
    at: AtOption = None,
    span: RangeOption = None,
    reason: ReasonOption = None,
    everything: AllOption = False,
    operator: OperatorOption = None,
) -> None:
    """Mark letters purged: `list` no longer shows them, and sealed ones lose their key, so
    nothing of them can be read again. Kafka keeps the records until the topic's retention.
    Letters that are not authentic can be purged too (that only hides them)."""
    chosen = Selection.parse(at, span, reason, everything)
    purged_by = _operator(operator)

    async def work(settings: Settings, db: asyncpg.Connection) -> None:
        found = await _letters(settings, db, family, await _signer(settings, db))
        letters = [letter for _, letter in found if chosen(letter)]
        destroyed = await purge(db, letters, purged_by)
        typer.echo(f"{len(letters)} purged, {destroyed} sealing keys destroyed")

    _run(work)
