"""Every purchase-order rule table, in one place; decide() reads them, nothing restates them."""

from __future__ import annotations

from collections.abc import Mapping

from service.domain.purchase_orders.model import Status

# ShipStation's transition table (seed 004).
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.OPEN, Status.CANCELLED}),
    Status.OPEN: frozenset({Status.RECEIVING, Status.CANCELLED}),
    Status.RECEIVING: frozenset({Status.RECEIVED, Status.CANCELLED}),
    Status.RECEIVED: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
    Status.CANCELLED: frozenset(),
}

INITIAL_STATUS = Status.DRAFT
STATUSES_ACCEPTING_REASON = frozenset({Status.CANCELLED})

# Seed 004: the full PUT only in draft; the shipping-details endpoint only in open, and only these.
FULLY_EDITABLE = frozenset({Status.DRAFT})
SHIPPING_EDITABLE = frozenset({Status.OPEN})
SHIPPING_FIELDS = (
    "expected_delivery_date",
    "payment_terms",
    "payment_status",
    "currency_code",
    "shipping_carrier",
    "tracking_number",
    "reference_number",
    "order_date",
    "note_to_supplier",
)

# Goods arrive while the order is with the supplier; the first receipt moves open to receiving,
# and the receipt that completes every line moves receiving to received.
RECEIVABLE = frozenset({Status.OPEN, Status.RECEIVING})
INVOICEABLE = frozenset(set(Status) - {Status.DRAFT, Status.CANCELLED})

# Seed 001's permanent deletion, but only where it loses nothing: a draft or cancelled order with
# no receipt and no invoice (ERPNext and Odoo refuse deletion while anything links to the order).
DELETABLE = frozenset({Status.DRAFT, Status.CANCELLED})

# What the inventory counts as incoming stock: ordered, sent to the supplier, not yet received.
# Closing or cancelling releases what is still outstanding.
COUNTS_AS_INCOMING = frozenset({Status.OPEN, Status.RECEIVING, Status.RECEIVED})
