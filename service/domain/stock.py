"""Stock movements as differences of stock positions. Pure.

A document's position is what it contributes to each (warehouse, bucket, sku). The movements of
an event are position(after) - position(before), so summing every movement a document ever
produced gives exactly its current position: consumers never re-derive a state machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from service.domain.values import frozen


class Bucket(StrEnum):
    INCOMING = "incoming"
    ON_HAND = "on_hand"
    RESERVED = "reserved"


@frozen
class Movement:
    warehouse_id: str
    sku: str
    bucket: Bucket
    quantity: int


Quantities = dict[str, int]
"""sku -> quantity; a sku not there is none. Plain dicts rather than Counters: a Counter built
from a mapping runs an abstract-class check that cost more than the rest of a position."""

Position = dict[tuple[str, Bucket, str], int]
"""(warehouse, bucket, sku) -> quantity; a key not there is none."""


def tally(lines: Iterable[tuple[str, int]], into: Quantities | None = None) -> Quantities:
    """The quantities of (sku, quantity) lines summed per sku, added to `into` if given."""
    total: Quantities = {} if into is None else into
    for sku, quantity in lines:
        total[sku] = total.get(sku, 0) + quantity
    return total


def repeated(keys: Iterable[str]) -> set[str]:
    """The keys that occur more than once."""
    seen: set[str] = set()
    twice: set[str] = set()
    for key in keys:
        (twice if key in seen else seen).add(key)
    return twice


def difference(before: Position, after: Position) -> tuple[Movement, ...]:
    changes = []
    for key in sorted(before.keys() | after.keys()):
        delta = after.get(key, 0) - before.get(key, 0)
        if delta:
            warehouse, bucket, sku = key
            changes.append(Movement(warehouse, sku, bucket, delta))
    return tuple(changes)
