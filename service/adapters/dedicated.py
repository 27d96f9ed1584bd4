"""The kinds of document kept in tables of their own rather than as JSON, with their preview
counterparts: customer orders, whose personal data is sealed field group by field group."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from contracts.topics import ORDERS
from service.adapters.crypto import Keyring
from service.adapters.order_store import PostgresOrders
from service.adapters.preview_store import PreviewOrders
from service.app.ports import DocumentKind
from service.domain.values import frozen


@frozen
class DedicatedStorage:
    repository: Callable[[asyncpg.Connection, Keyring], Any]
    preview: Callable[[asyncpg.Connection, Any], Any]
    """Reads through the real repository, writes nothing (see preview_store.py)."""


DEDICATED: Mapping[str, DedicatedStorage] = {
    ORDERS: DedicatedStorage(PostgresOrders, PreviewOrders)
}

PREVIEWS: Mapping[str, Callable[[asyncpg.Connection, Any], Any]] = {
    kind: storage.preview for kind, storage in DEDICATED.items()
}


def can_store(kind: DocumentKind[Any]) -> bool:
    """Whether documents of the kind can be kept: as JSON by their codec, or in tables of their
    own. Checked for every family when the service starts."""
    return kind.codec is not None or kind.name in DEDICATED
