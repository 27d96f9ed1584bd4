"""decide(command, state) -> the events of an accepted command, or every problem found. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.domain.decisions import (
    Accepted,
    Rejected,
    either,
    transition_problems,
    version_problems,
)
from service.domain.problems import ErrorCode, Problem
from service.domain.purchase_orders.model import (
    ChangePurchaseOrderStatus,
    CreatePurchaseOrder,
    DeletedPurchaseOrder,
    DeletePurchaseOrder,
    InvoiceLinked,
    LinkInvoice,
    PurchaseOrder,
    PurchaseOrderCommand,
    PurchaseOrderCreated,
    PurchaseOrderDeleted,
    PurchaseOrderDetails,
    PurchaseOrderEvent,
    PurchaseOrderStatusChanged,
    PurchaseOrderUpdated,
    Receipt,
    ReceiptRecorded,
    RecordReceipt,
    ShippingDetailsUpdated,
    State,
    Status,
    UpdatePurchaseOrder,
    UpdateShippingDetails,
)
from service.domain.purchase_orders.rules import (
    DELETABLE,
    FULLY_EDITABLE,
    INVOICEABLE,
    RECEIVABLE,
    SHIPPING_EDITABLE,
    SHIPPING_FIELDS,
    STATUSES_ACCEPTING_REASON,
    TRANSITIONS,
)
from service.domain.stock import repeated, tally

Decision = Accepted["PurchaseOrderEvent"] | Rejected


def decide(
    command: PurchaseOrderCommand, current: State | None, purchase_order_id: str
) -> Decision:
    if isinstance(command, CreatePurchaseOrder):
        return _create(command, current, purchase_order_id)
    if not isinstance(current, PurchaseOrder):
        return Rejected((_not_found(purchase_order_id, current),))
    problems = _version_problems(command.expected_version, current)
    events: tuple[PurchaseOrderEvent, ...]
    match command:
        case UpdatePurchaseOrder(details=details):
            problems += _editable_problems(current.status, FULLY_EDITABLE, "updated")
            problems += details_problems(details)
            events = (PurchaseOrderUpdated(details),)
        case UpdateShippingDetails(changes=changes):
            problems += _editable_problems(current.status, SHIPPING_EDITABLE, "shipping-updated")
            problems += _shipping_problems(current.details, changes)
            events = (ShippingDetailsUpdated(changes),)
        case ChangePurchaseOrderStatus(status=target, reason=reason):
            problems += transition_problems(
                TRANSITIONS, current.status, target, reason, STATUSES_ACCEPTING_REASON
            )
            events = (PurchaseOrderStatusChanged(current.status, target, reason),)
        case RecordReceipt(receipt=receipt):
            problems += _receipt_problems(current, receipt)
            events = _receipt_events(current, receipt)
        case LinkInvoice(invoice=invoice):
            problems += _invoice_problems(current, invoice.invoice_id)
            events = (InvoiceLinked(invoice),)
        case DeletePurchaseOrder():
            problems += _deletion_problems(current)
            events = (PurchaseOrderDeleted(),)
    return Rejected(tuple(problems)) if problems else Accepted(events)


def details_problems(details: PurchaseOrderDetails) -> list[Problem]:
    """Rules that span fields, beyond what the wire schema checks one field at a time."""
    problems = [
        Problem(
            ErrorCode.INVALID_REQUEST,
            f"sku '{line.sku}' appears on more than one line; list each sku once",
            f"payload.products.{index}.sku",
        )
        for index, line in _repeated_skus(details.products)
    ]
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


def _create(
    command: CreatePurchaseOrder, current: State | None, purchase_order_id: str
) -> Decision:
    problems = _version_problems(command.expected_version, current)
    if isinstance(current, PurchaseOrder):
        problems.append(
            Problem(
                ErrorCode.ALREADY_EXISTS,
                f"Purchase order '{purchase_order_id}' already exists",
                "purchase_order_id",
            )
        )
    elif isinstance(current, DeletedPurchaseOrder):
        problems.append(
            Problem(
                ErrorCode.ALREADY_EXISTS,
                f"Purchase order '{purchase_order_id}' was deleted; ids are not reused, so that "
                "its events keep one version sequence",
                "purchase_order_id",
            )
        )
    problems += details_problems(command.details)
    return (
        Rejected(tuple(problems))
        if problems
        else Accepted((PurchaseOrderCreated(command.details),))
    )


def _editable_problems(status: Status, allowed: frozenset[Status], what: str) -> list[Problem]:
    if status in allowed:
        return []
    wanted = either(allowed)
    return [
        Problem(
            ErrorCode.NOT_EDITABLE,
            f"a purchase order in '{status}' cannot be {what}; only in {wanted}",
            "type",
        )
    ]


def _shipping_problems(
    details: PurchaseOrderDetails, changes: tuple[tuple[str, object], ...]
) -> list[Problem]:
    problems = [
        Problem(
            ErrorCode.INVALID_REQUEST,
            f"'{name}' cannot be changed with update_shipping_details",
            f"payload.{name}",
        )
        for name, _ in changes
        if name not in SHIPPING_FIELDS
    ]
    if not changes:
        problems.append(
            Problem(ErrorCode.INVALID_REQUEST, "name at least one field to change", "payload")
        )
    if problems:
        return problems
    return details_problems(details.with_changes(changes))


def _receipt_problems(order: PurchaseOrder, receipt: Receipt) -> list[Problem]:
    problems = []
    if order.status not in RECEIVABLE:
        allowed = either(RECEIVABLE)
        problems.append(
            Problem(
                ErrorCode.INVALID_STATUS,
                f"a receipt can be recorded only while {allowed}, not '{order.status}'",
                "type",
            )
        )
    if any(r.receipt_id == receipt.receipt_id for r in order.receipts):
        problems.append(
            Problem(
                ErrorCode.ALREADY_EXISTS,
                f"receipt '{receipt.receipt_id}' is already recorded on this purchase order",
                "payload.receipt_id",
            )
        )
    ordered, received = order.ordered(), order.received()
    repeated = {index for index, _ in _repeated_skus(receipt.lines)}
    for index, line in enumerate(receipt.lines):
        if index in repeated:
            problems.append(
                Problem(
                    ErrorCode.INVALID_REQUEST,
                    f"sku '{line.sku}' appears on more than one line; list each sku once",
                    f"payload.lines.{index}.sku",
                )
            )
        elif line.sku not in ordered:
            problems.append(
                Problem(
                    ErrorCode.INVALID_REQUEST,
                    f"sku '{line.sku}' is not on this purchase order",
                    f"payload.lines.{index}.sku",
                )
            )
        elif (already := received.get(line.sku, 0)) + line.quantity > ordered[line.sku]:
            problems.append(
                Problem(
                    ErrorCode.INVALID_REQUEST,
                    f"receiving {line.quantity} of '{line.sku}' would exceed the ordered "
                    f"{ordered[line.sku]} (already received {already})",
                    f"payload.lines.{index}.quantity",
                )
            )
    return problems


def _receipt_events(order: PurchaseOrder, receipt: Receipt) -> tuple[PurchaseOrderEvent, ...]:
    events: list[PurchaseOrderEvent] = []
    if order.status is Status.OPEN:
        events.append(PurchaseOrderStatusChanged(Status.OPEN, Status.RECEIVING))
    events.append(ReceiptRecorded(receipt))
    received = tally(((line.sku, line.quantity) for line in receipt.lines), order.received())
    if all(received.get(sku, 0) >= quantity for sku, quantity in order.ordered().items()):
        events.append(PurchaseOrderStatusChanged(Status.RECEIVING, Status.RECEIVED))
    return tuple(events)


def _invoice_problems(order: PurchaseOrder, invoice_id: str) -> list[Problem]:
    problems = []
    if order.status not in INVOICEABLE:
        problems.append(
            Problem(
                ErrorCode.INVALID_STATUS,
                f"an invoice cannot be linked to a purchase order in '{order.status}'",
                "type",
            )
        )
    if any(i.invoice_id == invoice_id for i in order.invoices):
        problems.append(
            Problem(
                ErrorCode.ALREADY_EXISTS,
                f"invoice '{invoice_id}' is already linked to this purchase order",
                "payload.invoice_id",
            )
        )
    return problems


def _deletion_problems(order: PurchaseOrder) -> list[Problem]:
    """Every blocker at once: the status, and each receipt and invoice that depends on the order."""
    problems = []
    if order.status not in DELETABLE:
        allowed = either(DELETABLE)
        problems.append(
            Problem(
                ErrorCode.INVALID_STATUS,
                f"a purchase order in '{order.status}' cannot be deleted; only in {allowed} "
                "(cancel it first)",
                "type",
            )
        )
    problems += [
        Problem(
            ErrorCode.HAS_DEPENDENCIES,
            f"receipt '{r.receipt_id}' is recorded against this purchase order",
            "purchase_order_id",
        )
        for r in order.receipts
    ]
    problems += [
        Problem(
            ErrorCode.HAS_DEPENDENCIES,
            f"invoice '{i.invoice_id}' is linked to this purchase order",
            "purchase_order_id",
        )
        for i in order.invoices
    ]
    return problems


def _version_problems(expected: int | None, current: State | None) -> list[Problem]:
    return version_problems(expected, current.version if isinstance(current, PurchaseOrder) else 0)


def _not_found(purchase_order_id: str, current: State | None) -> Problem:
    if isinstance(current, DeletedPurchaseOrder):
        when = f" at {current.deleted_at.isoformat()}" if current.deleted_at else ""
        message = f"Purchase order '{purchase_order_id}' was deleted{when}"
    else:
        message = f"Purchase order '{purchase_order_id}' not found"
    return Problem(ErrorCode.NOT_FOUND, message, "purchase_order_id")


class _Line(Protocol):
    @property
    def sku(self) -> str: ...


def _repeated_skus(lines: Sequence[_Line]) -> list[tuple[int, _Line]]:
    twice = repeated(line.sku for line in lines)
    return [(index, line) for index, line in enumerate(lines) if line.sku in twice]
