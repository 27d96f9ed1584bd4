"""What a family publishes on its compacted state topic, and the message that carries it.

After every accepted change the kernel asks the family whether the document may be shown. If
so, the state follows the change's event: the snapshot events carry, with the version and the
event that made it (contracts.state). If the change is the one that made it unshowable (a
deletion; for customer orders, an erasure), a tombstone follows instead: the same key with a
null value, which tells readers to forget the document and lets compaction drop the key. From
then on nothing is published for the key, so an erased order never reappears there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from contracts.state import state_key
from service.app.ports import OutboxMessage
from service.app.wire_json import Written, in_field_order, wire_json
from service.domain.decisions import Transition
from service.domain.documents import Document
from service.domain.values import frozen

S = TypeVar("S", bound=Document)


@frozen
class StateRules(Generic[S]):
    """What a family supplies for its state topic."""

    shown: Callable[[S], bool]
    """Whether the document's state may be published: never once it is deleted, and for a
    family with personal data never once any of it was erased. Must stay false once false."""
    model: type[BaseModel]
    """The family's state message (contracts.state): the metadata every state carries, the
    document id field, and `snapshot`, the snapshot events carry. Its schema is the contract;
    the kernel writes it from the snapshot already serialised for history (tests check that
    what it writes is exactly this model)."""


def shown_until_deleted(document: Document) -> bool:
    """`StateRules.shown` for families without personal data."""
    return not document.is_deleted


def state_message(
    rules: StateRules[S],
    topic: str,
    id_field: str,
    transition: Transition[Any, S],
    snapshot: Written | None,
    event_id: UUID,
    event_type: str,
    updated_at: datetime,
) -> OutboxMessage | None:
    """The state (or tombstone) to publish after `transition`'s event; None when the document
    was not shown before and is not now (an erased order changing status again)."""
    after, before = transition.after, transition.before
    key = state_key(after.tenant_id, after.document_id).encode()
    if rules.shown(after):
        assert snapshot is not None, "a shown document is live, so it has a snapshot"
        # The snapshot JSON history keeps, embedded as it is: serialised once per version.
        fields = in_field_order(
            rules.model,
            {
                "tenant_id": after.tenant_id,
                "version": after.version,
                "event_id": event_id,
                "event_type": event_type,
                "updated_at": updated_at,
                id_field: after.document_id,
                "snapshot": snapshot,
            },
        )
        value = wire_json(fields)
        return OutboxMessage(topic, key, value)
    if before is not None and rules.shown(before):
        return OutboxMessage(topic, key, None)
    return None
