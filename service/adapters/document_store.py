"""Documents kept as JSON in the shared tables (`documents`, `document_history`,
`document_tombstones`), a statement for a whole batch. A document's kind is a column, so any
family with a codec is stored here without a migration of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import asyncpg

from service.adapters.document_cache import CommittedDocuments, Held
from service.adapters.history import history_row
from service.app.ports import Changes, DocumentCodec, DocumentKey
from service.domain.documents import Document
from service.errors import VersionSequenceError

S = TypeVar("S", bound=Document)

# A document still at the version and event the caller holds comes without its snapshot. The
# version is compared too: a build before 0022 leaves `last_event_id` as it was when it writes a
# later version (during a rolling upgrade), but never the same version again.
_LOAD = """
SELECT k.tenant_id, k.document_id, d.version, d.last_event_id,
       CASE WHEN d.version = k.held_version AND d.last_event_id = k.held_event
            THEN NULL ELSE d.document::text END AS document,
       t.last_version, t.deleted_at
FROM unnest($2::document_lookup[]) AS k
LEFT JOIN documents d ON d.kind = $1 AND (d.tenant_id, d.document_id) = (k.tenant_id, k.document_id)
LEFT JOIN document_tombstones t
    ON t.kind = $1 AND (t.tenant_id, t.document_id) = (k.tenant_id, k.document_id)
WHERE d.version IS NOT NULL OR t.last_version IS NOT NULL
"""

# The live and the deleted documents of a batch are disjoint, so one statement writes both. Each
# snapshot is sent and read as JSON once: a live document is its last version's history entry.
_SAVE = """
WITH entries AS MATERIALIZED (
    SELECT tenant_id, document_id, version, command_id, event_id, event_type,
           document::jsonb AS document, actor_type, actor_id, actor_issuer
    FROM unnest($3::document_history_row[])
), saved AS (
    INSERT INTO documents (kind, tenant_id, document_id, status, version, document, last_event_id)
    SELECT $1, s.tenant_id, s.document_id, s.status, s.version, e.document, e.event_id
    FROM unnest($2::document_row[]) AS s
    JOIN entries e USING (tenant_id, document_id, version)
    ON CONFLICT (kind, tenant_id, document_id) DO UPDATE
    SET status = EXCLUDED.status, version = EXCLUDED.version,
        document = EXCLUDED.document, last_event_id = EXCLUDED.last_event_id, updated_at = now()
), history AS (
    INSERT INTO document_history
        (kind, tenant_id, document_id, version, command_id, event_id, event_type, document,
         actor_type, actor_id, actor_issuer)
    SELECT $1, tenant_id, document_id, version, command_id, event_id, event_type, document,
           actor_type, actor_id, actor_issuer
    FROM entries
), gone AS (
    SELECT * FROM unnest($4::document_gone_row[])
), deleted AS (
    DELETE FROM documents d USING gone g
    WHERE d.kind = $1 AND d.tenant_id = g.tenant_id AND d.document_id = g.document_id
), deleted_history AS (
    DELETE FROM document_history h USING gone g
    WHERE h.kind = $1 AND h.tenant_id = g.tenant_id AND h.document_id = g.document_id
)
INSERT INTO document_tombstones (kind, tenant_id, document_id, last_version)
SELECT $1, tenant_id, document_id, last_version FROM gone
"""


class JsonDocuments(Generic[S]):
    """One kind of document; `codec` maps its states to what is stored and back. With `cache`,
    a document found at the version and event the cache holds is not read again, and what this
    transaction loads and saves is handed to the cache once it commits (`committed`)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        kind: str,
        codec: DocumentCodec[S],
        cache: CommittedDocuments | None = None,
    ) -> None:
        self._conn = conn
        self._kind = kind
        self._codec = codec
        self._cache = cache
        self._seen: list[tuple[DocumentKey, Held | None]] = []
        """Read and written in this transaction, in order, None where a document is not to be
        held: for the cache, once the transaction commits."""

    async def load_many(
        self, keys: Sequence[DocumentKey], *, personal_data: bool = True
    ) -> dict[DocumentKey, S]:
        # Documents stored as snapshots hold no personal data: `personal_data` changes nothing.
        held = self._cache.lookup(self._kind, keys) if self._cache is not None else {}
        rows = await self._conn.fetch(
            _LOAD,
            self._kind,
            [
                (key[0], key[1], entry.version, entry.event_id)
                if (entry := held.get(key)) is not None
                else (key[0], key[1], None, None)
                for key in keys
            ],
        )
        found: dict[DocumentKey, S] = {}
        for row in rows:
            key = (row["tenant_id"], row["document_id"])
            version, document = row["version"], row["document"]
            if version is None:
                found[key] = self._codec.tombstone(*key, row["last_version"], row["deleted_at"])
                self._seen.append((key, None))
            elif document is None:  # at the version and event held: compared there
                found[key] = held[key].state
            else:
                state = found[key] = self._codec.load(*key, version, document)
                event_id = row["last_event_id"]  # None: by a build before 0022, or by hand
                entry = None if event_id is None else Held(event_id, version, state, len(document))
                self._seen.append((key, entry))
        return found

    def committed(self) -> None:
        """The transaction committed: what it read and wrote is the documents' state now."""
        if self._cache is not None:
            self._cache.remember(self._kind, self._seen)

    async def save_many(self, changes: Changes[S]) -> None:
        if wrong := changes.out_of_sequence():
            raise VersionSequenceError(self._kind, wrong)
        saves = changes.saves()
        gone = changes.deletions()
        if not saves and not gone:
            return
        status = self._codec.status
        await self._conn.execute(
            _SAVE,
            self._kind,
            [
                (d.tenant_id, d.document_id, status(d), d.version)
                for d in (s.document for s in saves)
            ],
            [
                (save.document.tenant_id, save.document.document_id, *history_row(version.entry))
                for save in saves
                for version in save.versions
            ],
            [(d.tenant_id, d.document_id, d.version) for d in gone],
        )
        for save in saves:
            last = save.versions[-1].entry
            held = Held(last.event_id, last.version, save.document, len(last.snapshot))
            self._seen.append((_key(save.document), held))
        self._seen += ((_key(d), None) for d in gone)


def _key(document: Document) -> DocumentKey:
    return (document.tenant_id, document.document_id)
