"""decide(command, state) -> the events of an accepted command, or every problem found. Pure.

Customers (actor type 'customer') see only their own orders: anything else is answered exactly as
a missing order, so nobody can learn which order ids exist by probing.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.domain.decisions import (
    Accepted,
    Rejected,
    either,
    transition_problems,
    version_problems,
)
from service.domain.orders.model import (
    Actor,
    ChangeOrderStatus,
    CommandForOrders,
    CreateOrder,
    DeletedOrder,
    DeleteOrder,
    Item,
    Order,
    OrderCommand,
    OrderCreated,
    OrderDeleted,
    OrderEvent,
    OrderRedacted,
    OrderRedactionScheduled,
    OrderStatusChanged,
    OrderUpdated,
    Part,
    RedactOrder,
    State,
    Status,
    UpdateOrder,
)
from service.domain.orders.rules import (
    BEING_FULFILLED,
    DELETABLE,
    EDITABLE_PARTS,
    LEAVES_PERSONAL_DATA_SEALED,
    STATUSES_ACCEPTING_REASON,
    TRANSITIONS,
)
from service.domain.problems import ErrorCode, Problem
from service.domain.stock import repeated

Decision = Accepted[OrderEvent] | Rejected


def decide(
    command: OrderCommand,
    current: State | None,
    order_id: str,
    *,
    voucher_holder: str | None = None,
    customer_erased: bool = False,
) -> Decision:
    """`voucher_holder`: the live order of the tenant holding the create's voucher, if any.
    `customer_erased`: the customer the command would store personal data for was erased."""
    if isinstance(command, CreateOrder):
        return _create(command, current, order_id, voucher_holder, customer_erased)
    if not isinstance(current, Order) or not _visible_to(command.actor, current):
        return Rejected((_not_found(order_id, current, command.actor),))
    problems = version_problems(command.expected_version, current.version)
    events: tuple[OrderEvent, ...]
    match command:
        case UpdateOrder():
            problems += _update_problems(current.status, command)
            if customer_erased and (command.shipping_address or command.billing_address):
                problems.append(_subject_erased(current.details.customer_id, "payload"))
            events = (
                OrderUpdated(command.items, command.shipping_address, command.billing_address),
            )
        case ChangeOrderStatus(status=target, reason=reason):
            problems += transition_problems(
                TRANSITIONS, current.status, target, reason, STATUSES_ACCEPTING_REASON
            )
            events = (OrderStatusChanged(current.status, target, reason),)
            if current.redaction_pending and target not in BEING_FULFILLED:
                # The erasure that waited for the order to leave fulfilment happens now.
                events += (OrderRedacted(current.redaction_pending),)
        case RedactOrder(groups=groups):
            if not groups:
                problems.append(
                    Problem(ErrorCode.INVALID_REQUEST, "name at least one group", "payload.groups")
                )
            events = (
                (OrderRedactionScheduled(groups),)
                if current.status in BEING_FULFILLED
                else (OrderRedacted(groups),)
            )
        case DeleteOrder():
            problems += _deletion_problems(current)
            events = (OrderDeleted(),)
    return Rejected(tuple(problems)) if problems else Accepted(events)


def _create(
    command: CreateOrder,
    current: State | None,
    order_id: str,
    voucher_holder: str | None,
    customer_erased: bool,
) -> Decision:
    customer = command.actor.customer_id if command.actor else None
    if customer is not None:
        return _create_by_customer(
            command, customer, current, order_id, voucher_holder, customer_erased
        )
    actual = current.version if isinstance(current, Order) else 0
    problems = version_problems(command.expected_version, actual)
    if current is not None:
        problems.append(
            _already_exists(order_id)
            if isinstance(current, Order)
            else Problem(
                ErrorCode.ALREADY_EXISTS,
                f"Order '{order_id}' was deleted; order ids are not reused",
                "order_id",
            )
        )
    problems += _items_problems(command.details.items, "payload.items")
    if customer_erased:
        problems.append(_subject_erased(command.details.customer_id, "payload.customer_id"))
    if command.details.voucher_code is not None and voucher_holder not in (None, order_id):
        problems.append(_voucher_in_use(command.details.voucher_code))
    return Rejected(tuple(problems)) if problems else Accepted((OrderCreated(command.details),))


def _create_by_customer(
    command: CreateOrder,
    customer: str,
    current: State | None,
    order_id: str,
    voucher_holder: str | None,
    customer_erased: bool,
) -> Decision:
    """A customer's create tells them nothing about anyone else: placed for somebody else, it is
    refused on that alone, before anything stored is looked at; an id that is taken answers the
    same whoever holds it and whatever its state (live, deleted), with no version. That an id
    or a voucher is taken is all it can tell, which a create of a free one would tell too."""
    items = _items_problems(command.details.items, "payload.items")
    if customer != command.details.customer_id:
        problem = Problem(
            ErrorCode.INVALID_REQUEST,
            "a customer can place orders only for themselves: customer_id must be the actor's id",
            "payload.customer_id",
        )
        return Rejected((problem, *items))
    own = isinstance(current, Order) and current.details.customer_id == customer
    if current is not None and not own:
        # Taken by somebody else, or deleted: nothing stored is looked at any further, so the
        # answer says nothing of whose it is, its version, or the voucher it holds.
        return Rejected((_already_exists(order_id), *items))
    problems: list[Problem] = []
    actual = current.version if isinstance(current, Order) else 0
    problems += version_problems(command.expected_version, actual)
    if current is not None:
        problems.append(_already_exists(order_id))
    problems += items
    if customer_erased:
        problems.append(_subject_erased(customer, "payload.customer_id"))
    if command.details.voucher_code is not None and voucher_holder not in (None, order_id):
        problems.append(_voucher_in_use(command.details.voucher_code))
    return Rejected(tuple(problems)) if problems else Accepted((OrderCreated(command.details),))


def _already_exists(order_id: str) -> Problem:
    return Problem(ErrorCode.ALREADY_EXISTS, f"Order '{order_id}' already exists", "order_id")


def _voucher_in_use(code: str) -> Problem:
    return Problem(
        ErrorCode.VOUCHER_IN_USE,
        f"voucher '{code}' is held by another open order",
        "payload.voucher_code",
    )


def _items_problems(items: Sequence[Item], path: str) -> list[Problem]:
    """Rules across lines: each sku once, one currency per order."""
    twice = repeated(item.sku for item in items)
    problems = [
        Problem(
            ErrorCode.INVALID_REQUEST,
            f"sku '{item.sku}' appears on more than one item; list each sku once",
            f"{path}.{index}.sku",
        )
        for index, item in enumerate(items)
        if item.sku in twice
    ]
    currency = items[0].currency
    problems += [
        Problem(
            ErrorCode.INVALID_REQUEST,
            f"every item of an order has one currency: expected '{currency}' like the first item",
            f"{path}.{index}.currency",
        )
        for index, item in enumerate(items)
        if item.currency != currency
    ]
    return problems


def _update_problems(status: Status, command: UpdateOrder) -> list[Problem]:
    parts = command.parts()
    if not parts:
        return [
            Problem(
                ErrorCode.INVALID_REQUEST,
                "name at least one of items, shipping_address, billing_address",
                "payload",
            )
        ]
    editable = EDITABLE_PARTS.get(status, frozenset())
    if not editable:
        return [
            Problem(
                ErrorCode.NOT_EDITABLE,
                f"an order in '{status}' cannot be changed any more",
                "type",
            )
        ]
    problems = [
        Problem(
            ErrorCode.NOT_EDITABLE,
            f"{part} can be changed only while {_statuses_allowing(part)}; the order is '{status}'",
            f"payload.{part}",
        )
        for part in parts
        if part not in editable
    ]
    if command.items is not None:
        problems += _items_problems(command.items, "payload.items")
    return problems


def _statuses_allowing(part: Part) -> str:
    return either(status for status, parts in EDITABLE_PARTS.items() if part in parts)


def _deletion_problems(order: Order) -> list[Problem]:
    if order.status in DELETABLE:
        return []
    return [
        Problem(
            ErrorCode.ALREADY_FULFILLED,
            f"order '{order.order_id}' is '{order.status}': processing has begun, so it can no "
            f"longer be deleted (only while {either(DELETABLE)}); cancel it instead",
            "type",
        )
    ]


def _subject_erased(customer_id: str, field: str) -> Problem:
    return Problem(
        ErrorCode.SUBJECT_ERASED,
        f"customer '{customer_id}' was erased at their request; no new personal data is stored"
        " for them",
        field,
    )


def _visible_to(actor: Actor | None, order: Order) -> bool:
    customer = actor.customer_id if actor else None
    return customer is None or customer == order.details.customer_id


def _not_found(order_id: str, current: State | None, actor: Actor | None) -> Problem:
    # A deleted order is named as such only to staff and services; a customer learns nothing.
    if isinstance(current, DeletedOrder) and not (actor and actor.customer_id):
        when = f" at {current.deleted_at.isoformat()}" if current.deleted_at else ""
        message = f"Order '{order_id}' was deleted{when}"
    else:
        message = f"Order '{order_id}' not found"
    return Problem(ErrorCode.NOT_FOUND, message, "order_id")


def reads_personal_data(command: CommandForOrders) -> bool:
    """Whether deciding `command` reads or rewrites an order's addresses, so they must be
    opened (rules.LEAVES_PERSONAL_DATA_SEALED)."""
    return not isinstance(command, LEAVES_PERSONAL_DATA_SEALED)
