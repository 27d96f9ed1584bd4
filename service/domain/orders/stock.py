"""What a customer order contributes to stock: reserved until shipped, then gone from on hand."""

from __future__ import annotations

from service.domain.orders.model import Order, State
from service.domain.orders.rules import RESERVES_STOCK, SHIPPED
from service.domain.stock import Bucket, Movement, Position, difference


def position(state: State | None) -> Position:
    result: Position = {}
    if not isinstance(state, Order):
        return result
    warehouse = state.details.warehouse_id
    quantities = state.quantities()
    if state.status in RESERVES_STOCK:
        result.update(((warehouse, Bucket.RESERVED, sku), n) for sku, n in quantities.items())
    if state.status in SHIPPED:
        result.update(((warehouse, Bucket.ON_HAND, sku), -n) for sku, n in quantities.items())
    return result


def movements(before: State | None, after: State | None) -> tuple[Movement, ...]:
    return difference(position(before), position(after))
