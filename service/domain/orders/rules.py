"""Every customer-order rule table, in one place; decide() reads them, nothing restates them."""

from __future__ import annotations

from collections.abc import Mapping

from service.domain.orders.model import (
    ChangeOrderStatus,
    DeleteOrder,
    Part,
    RedactCustomer,
    RedactOrder,
    Status,
)

# EON's shipment statuses (seed 003) as a strict table.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PLACED: frozenset({Status.READY, Status.CANCELLED}),
    Status.READY: frozenset({Status.FULFILLED, Status.CANCELLED}),
    Status.FULFILLED: frozenset({Status.SENT}),
    Status.SENT: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
}

INITIAL_STATUS = Status.PLACED
STATUSES_ACCEPTING_REASON = frozenset({Status.CANCELLED})

# What `update` may replace in each status; a status not listed allows nothing.
EDITABLE_PARTS: Mapping[Status, frozenset[Part]] = {
    Status.PLACED: frozenset(Part),
    Status.READY: frozenset({Part.SHIPPING_ADDRESS}),
}

# Seed 003: only an order nothing has happened to yet can be deleted; later, cancel it.
DELETABLE = frozenset({Status.PLACED})

# A cancelled order never redeemed its voucher, so the voucher is free again; deletion frees it
# too (seed 002).
HOLDS_VOUCHER = frozenset(set(Status) - {Status.CANCELLED})

# Stock: reserved from 'ready' until it ships; shipping takes it out of the warehouse.
RESERVES_STOCK = frozenset({Status.READY, Status.FULFILLED})
SHIPPED = frozenset({Status.SENT, Status.DELIVERED})

# Erasing the addresses of an order that is still being fulfilled would stop its shipping: the
# erasure waits, and runs in the transaction that moves the order out of these statuses.
BEING_FULFILLED = frozenset({Status.PLACED, Status.READY, Status.FULFILLED})

# Commands whose decisions never read or rewrite an order's addresses, so its personal data
# stays sealed for them: erasing destroys keys and reads nothing. Anything else is opened.
LEAVES_PERSONAL_DATA_SEALED = (ChangeOrderStatus, DeleteOrder, RedactOrder, RedactCustomer)
