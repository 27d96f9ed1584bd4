"""What a purchase order contributes to stock: received goods on hand, the rest incoming."""

from __future__ import annotations

from service.domain.purchase_orders.model import PurchaseOrder, State
from service.domain.purchase_orders.rules import COUNTS_AS_INCOMING
from service.domain.stock import Bucket, Movement, Position, difference


def position(state: State | None) -> Position:
    """(warehouse, bucket, sku) -> quantity this order contributes."""
    result: Position = {}
    if not isinstance(state, PurchaseOrder):
        return result
    warehouse = state.details.warehouse_id
    for sku, quantity in state.received().items():
        result[(warehouse, Bucket.ON_HAND, sku)] = quantity
    if state.status in COUNTS_AS_INCOMING:
        for sku, quantity in state.outstanding().items():
            result[(warehouse, Bucket.INCOMING, sku)] = quantity
    return result


def movements(before: State | None, after: State | None) -> tuple[Movement, ...]:
    return difference(position(before), position(after))
