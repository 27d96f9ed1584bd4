"""Purchase orders: the status rule table, and the decide/evolve pair.

decide(command, state) returns the events a command causes or every problem that forbids it;
evolve(state, event) folds one event into the state. Both are pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from service.domain.problems import ErrorCode, Problem


class Status(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    RECEIVING = "receiving"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# The transition table of ShipStation's purchase orders (seed 004), the only source of truth.
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


@dataclass(frozen=True)
class ProductLine:
    sku: str
    quantity: int
    supplier_sku: str | None = None
    cost: Decimal | None = None


@dataclass(frozen=True)
class PurchaseOrderDetails:
    supplier_id: str
    warehouse_id: str
    products: tuple[ProductLine, ...]
    order_date: datetime | None = None
    expected_delivery_date: datetime | None = None
    payment_terms: str | None = None
    payment_status: str | None = None
    currency_code: str | None = None
    shipping_carrier: str | None = None
    tracking_number: str | None = None
    reference_number: str | None = None
    note_to_supplier: str | None = None


@dataclass(frozen=True)
class PurchaseOrder:
    tenant_id: str
    purchase_order_id: str
    status: Status
    version: int
    details: PurchaseOrderDetails


# Commands: imperative, carrying only what the decision needs.


@dataclass(frozen=True)
class CreatePurchaseOrder:
    details: PurchaseOrderDetails
    expected_version: int | None = None


@dataclass(frozen=True)
class ChangePurchaseOrderStatus:
    status: Status
    reason: str | None = None
    expected_version: int | None = None


PurchaseOrderCommand = CreatePurchaseOrder | ChangePurchaseOrderStatus


# Events: past tense, each one document version.


@dataclass(frozen=True)
class PurchaseOrderCreated:
    details: PurchaseOrderDetails
    status: Status = INITIAL_STATUS


@dataclass(frozen=True)
class PurchaseOrderStatusChanged:
    from_status: Status
    to_status: Status
    reason: str | None = None


PurchaseOrderEvent = PurchaseOrderCreated | PurchaseOrderStatusChanged


@dataclass(frozen=True)
class Accepted:
    events: tuple[PurchaseOrderEvent, ...]


@dataclass(frozen=True)
class Rejected:
    problems: tuple[Problem, ...]


Decision = Accepted | Rejected


def decide(
    command: PurchaseOrderCommand, current: PurchaseOrder | None, purchase_order_id: str
) -> Decision:
    problems = [*_version_problems(command.expected_version, current)]
    events: tuple[PurchaseOrderEvent, ...] = ()
    match command:
        case CreatePurchaseOrder(details=details):
            if current is not None:
                problems.append(
                    Problem(
                        ErrorCode.ALREADY_EXISTS,
                        f"Purchase order '{purchase_order_id}' already exists",
                        "purchase_order_id",
                    )
                )
            problems.extend(details_problems(details))
            events = (PurchaseOrderCreated(details),)
        case ChangePurchaseOrderStatus(status=target, reason=reason):
            if current is None:
                return Rejected((_not_found(purchase_order_id),))
            problems.extend(_transition_problems(current.status, target, reason))
            events = (PurchaseOrderStatusChanged(current.status, target, reason),)
    return Rejected(tuple(problems)) if problems else Accepted(events)


def evolve(
    current: PurchaseOrder | None,
    event: PurchaseOrderEvent,
    *,
    tenant_id: str,
    purchase_order_id: str,
) -> PurchaseOrder:
    """The state after `event`; each event is one new version."""
    match event:
        case PurchaseOrderCreated(details=details, status=status):
            return PurchaseOrder(tenant_id, purchase_order_id, status, 1, details)
        case PurchaseOrderStatusChanged(to_status=to_status):
            assert current is not None, "a status change needs an existing purchase order"
            return replace(current, status=to_status, version=current.version + 1)


def fold(
    current: PurchaseOrder | None,
    events: tuple[PurchaseOrderEvent, ...],
    tenant_id: str,
    purchase_order_id: str,
) -> list[tuple[PurchaseOrderEvent, PurchaseOrder]]:
    """Each event paired with the state right after it, in order."""
    states = []
    state = current
    for event in events:
        state = evolve(state, event, tenant_id=tenant_id, purchase_order_id=purchase_order_id)
        states.append((event, state))
    return states


def details_problems(details: PurchaseOrderDetails) -> list[Problem]:
    """Rules that span fields, beyond what the wire schema checks one field at a time."""
    problems: list[Problem] = []
    seen = Counter(line.sku for line in details.products)
    for index, line in enumerate(details.products):
        if seen[line.sku] > 1:
            problems.append(
                Problem(
                    ErrorCode.INVALID_REQUEST,
                    f"sku '{line.sku}' appears on more than one line; list each sku once",
                    f"payload.products.{index}.sku",
                )
            )
    if (
        details.order_date is not None
        and details.expected_delivery_date is not None
        and details.expected_delivery_date < details.order_date
    ):
        problems.append(
            Problem(
                ErrorCode.INVALID_REQUEST,
                "expected_delivery_date must not be before order_date",
                "payload.expected_delivery_date",
            )
        )
    return problems


def _transition_problems(current: Status, target: Status, reason: str | None) -> list[Problem]:
    problems: list[Problem] = []
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(f"'{s}'" for s in TRANSITIONS[current])) or "none (terminal)"
        problems.append(
            Problem(
                ErrorCode.INVALID_STATUS,
                f"Cannot transition from '{current}' to '{target}'; allowed: {allowed}",
                "payload.status",
            )
        )
    if reason is not None and target not in STATUSES_ACCEPTING_REASON:
        problems.append(
            Problem(
                ErrorCode.INVALID_REQUEST,
                f"a reason is accepted only when the status becomes 'cancelled', not '{target}'",
                "payload.reason",
            )
        )
    return problems


def _version_problems(expected: int | None, current: PurchaseOrder | None) -> list[Problem]:
    actual = 0 if current is None else current.version
    if expected is None or expected == actual:
        return []
    return [
        Problem(
            ErrorCode.VERSION_CONFLICT,
            f"expected version {expected}, but the current version is {actual}",
            "expected_version",
        )
    ]


def _not_found(purchase_order_id: str) -> Problem:
    return Problem(
        ErrorCode.NOT_FOUND,
        f"Purchase order '{purchase_order_id}' not found",
        "purchase_order_id",
    )
