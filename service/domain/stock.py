"""Stock movements as differences of stock positions. Pure.

A document's position is what it contributes to each (warehouse, bucket, sku). The movements of
an event are position(after) - position(before), so summing every movement a document ever
produced gives exactly its current position: consumers never re-derive a state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Bucket(StrEnum):
    INCOMING = "incoming"
    ON_HAND = "on_hand"
    RESERVED = "reserved"


@dataclass(frozen=True)
class Movement:
    warehouse_id: str
    sku: str
    bucket: Bucket
    quantity: int


Position = dict[tuple[str, Bucket, str], int]
"""(warehouse, bucket, sku) -> quantity; a key not there is none."""


def difference(before: Position, after: Position) -> tuple[Movement, ...]:
    changes = []
    for key in sorted(before.keys() | after.keys()):
        delta = after.get(key, 0) - before.get(key, 0)
        if delta:
            warehouse, bucket, sku = key
            changes.append(Movement(warehouse, sku, bucket, delta))
    return tuple(changes)
