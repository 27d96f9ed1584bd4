"""What a purchase order contributes to stock: received goods on hand, the rest incoming."""

from __future__ import annotations

from service.domain.purchase_orders.model import PurchaseOrder, State
from service.domain.purchase_orders.rules import COUNTS_AS_INCOMING
from service.domain.stock import Bucket, Movement, Position, difference


def position(state: State | None) -> Position:
    """(warehouse, bucket, sku) -> quantity this order contributes: what was received is on
    hand, and while the order counts as incoming, what is ordered and not yet received (never
    negative) is incoming. Plain dicts: this runs twice for every change of every order."""
    result: Position = {}
    if not isinstance(state, PurchaseOrder):
        return result
    warehouse = state.details.warehouse_id
    received: dict[str, int] = {}
    for receipt in state.receipts:
        for line in receipt.lines:
            received[line.sku] = received.get(line.sku, 0) + line.quantity
    for sku, quantity in received.items():
        if quantity:
            result[(warehouse, Bucket.ON_HAND, sku)] = quantity
    if state.status in COUNTS_AS_INCOMING:
        ordered = {line.sku: line.quantity for line in state.details.products}
        for sku, quantity in ordered.items():
            if (left := quantity - received.get(sku, 0)) > 0:
                result[(warehouse, Bucket.INCOMING, sku)] = left
    return result


def movements(before: State | None, after: State | None) -> tuple[Movement, ...]:
    return difference(position(before), position(after))
