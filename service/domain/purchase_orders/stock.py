"""Stock movements as differences of stock positions.

An order's position is what it contributes to each (bucket, sku) of its warehouse. The movements
of an event are position(after) - position(before), so summing every movement an order ever
produced gives exactly its current position: consumers never re-derive the state machine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from service.domain.purchase_orders.model import PurchaseOrder, State
from service.domain.purchase_orders.rules import COUNTS_AS_INCOMING


class Bucket(StrEnum):
    INCOMING = "incoming"
    ON_HAND = "on_hand"


@dataclass(frozen=True)
class Movement:
    warehouse_id: str
    sku: str
    bucket: Bucket
    quantity: int


Position = Counter[tuple[str, Bucket, str]]


def position(state: State | None) -> Position:
    """(warehouse, bucket, sku) -> quantity this order contributes."""
    result: Position = Counter()
    if not isinstance(state, PurchaseOrder):
        return result
    warehouse = state.details.warehouse_id
    for sku, quantity in state.received().items():
        result[(warehouse, Bucket.ON_HAND, sku)] += quantity
    if state.status in COUNTS_AS_INCOMING:
        for sku, quantity in state.outstanding().items():
            result[(warehouse, Bucket.INCOMING, sku)] += quantity
    return result


def movements(before: State | None, after: State | None) -> tuple[Movement, ...]:
    old, new = position(before), position(after)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        delta = new[key] - old[key]
        if delta:
            warehouse, bucket, sku = key
            changes.append(Movement(warehouse, sku, bucket, delta))
    return tuple(changes)
