"""What the kernel needs to know of any family's document state. Pure."""

from __future__ import annotations

from typing import Protocol


class Document(Protocol):
    """A family's state of one document: live, or the tombstone its deletion left."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def document_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def is_deleted(self) -> bool:
        """A tombstone: the document is gone, its id is never reused."""
        ...
