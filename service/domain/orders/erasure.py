"""Erasing a customer across their orders: which orders, and what each one must do. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from service.domain.decisions import Accepted, Rejected
from service.domain.orders.decide import decide
from service.domain.orders.model import DataGroup, Order, OrderEvent, RedactCustomer, RedactOrder
from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen

EVERY_GROUP = frozenset(DataGroup)


@frozen
class CustomerErasure:
    """Per order, the events that erase it (or schedule its erasure); orders already fully
    erased have none, so repeating a customer redaction changes nothing."""

    per_order: tuple[tuple[Order, tuple[OrderEvent, ...]], ...]


def decide_customer_redaction(
    command: RedactCustomer, orders_of_customer: Mapping[str, Order]
) -> CustomerErasure | Rejected:
    """`orders_of_customer`: every live order of the customer in the tenant, by id."""
    actor_customer = command.actor.customer_id if command.actor else None
    if actor_customer is not None and actor_customer != command.customer_id:
        return Rejected((Problem(ErrorCode.NOT_FOUND, "customer not found", "customer_id"),))
    listed = command.orders_to_redact
    problems = [
        Problem(
            ErrorCode.NOT_FOUND,
            f"order '{order_id}' is not an order of customer '{command.customer_id}'",
            f"payload.orders_to_redact.{index}",
        )
        for index, order_id in enumerate(listed or ())
        if order_id not in orders_of_customer
    ]
    if problems:
        return Rejected(tuple(problems))
    chosen = sorted(orders_of_customer) if listed is None else sorted(set(listed))
    per_order = []
    for order_id in chosen:
        order = orders_of_customer[order_id]
        remaining = EVERY_GROUP - order.redacted - order.redaction_pending
        if not remaining:
            continue
        decision = decide(RedactOrder(remaining), order, order_id)
        assert isinstance(decision, Accepted), decision  # staff may always redact a live order
        per_order.append((order, decision.events))
    return CustomerErasure(tuple(per_order))
