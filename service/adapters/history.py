"""History rows shared by every family's store."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import HistoryEntry


def actor_columns(entries: Sequence[HistoryEntry]) -> tuple[list[str | None], ...]:
    """The actor_type, actor_id and actor_issuer arrays of history entries, for `unnest`."""
    actors = [entry.actor for entry in entries]
    return (
        [a.type if a else None for a in actors],
        [a.id if a else None for a in actors],
        [a.issuer if a else None for a in actors],
    )
