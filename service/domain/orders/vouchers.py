"""Which voucher an order holds (pure)."""

from __future__ import annotations

from service.domain.orders.model import Order, State
from service.domain.orders.rules import HOLDS_VOUCHER


def held_voucher(state: State | None) -> str | None:
    """The voucher code the order holds, if any: a live order holds its voucher until it is
    cancelled (a deleted one holds nothing)."""
    if isinstance(state, Order) and state.status in HOLDS_VOUCHER:
        return state.details.voucher_code
    return None
