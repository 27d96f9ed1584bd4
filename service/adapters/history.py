"""History rows shared by every family's store."""

from __future__ import annotations

from uuid import UUID

from service.app.ports import HistoryEntry

HistoryRow = tuple[int, UUID, UUID, str, str, str | None, str | None, str | None]


def history_row(entry: HistoryEntry) -> HistoryRow:
    """A history entry's attributes, in the order the history row types declare them after
    the document's key (migration 0023): version, command and event ids, event type, snapshot,
    and the actor's type, id and issuer."""
    actor = entry.actor
    return (
        entry.version,
        entry.command_id,
        entry.event_id,
        entry.event_type,
        entry.snapshot.decode(),
        actor.type if actor else None,
        actor.id if actor else None,
        actor.issuer if actor else None,
    )
