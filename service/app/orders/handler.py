"""Decides customer-order commands and turns accepted ones into an event, history and movements."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from contracts import orders as wire
from contracts.inventory import MovementSource, movement_key
from contracts.topics import ORDERS, DocumentTopics
from service.app.family import Decided, Family
from service.app.orders.translate import command_from_wire, groups_to_wire, snapshot_to_wire
from service.app.outcomes import event_message, movement_message, rejection_message
from service.app.parse import CommandSpec, ValidCommand
from service.app.ports import HistoryEntry, OutboxMessage, UnitOfWork
from service.domain import orders
from service.domain.orders.stock import movements


def order_family(prefix: str = "") -> Family[orders.OrderCommand]:
    return Family(
        name=ORDERS,
        topics=DocumentTopics.for_family(ORDERS, prefix),
        commands=CommandSpec("order_id", wire.ORDER_COMMAND, command_from_wire),
        rejection_model=wire.OrderRejection,
    )


class OrderHandler:
    def __init__(self, family: Family[orders.OrderCommand], movements_topic: str) -> None:
        self._family = family
        self._movements_topic = movements_topic

    @property
    def family(self) -> Family[orders.OrderCommand]:
        return self._family

    async def handle(
        self, uow: UnitOfWork, cmd: ValidCommand[orders.OrderCommand], now: datetime
    ) -> Decided:
        current = await uow.orders.load(cmd.tenant_id, cmd.document_id)
        holder = None
        if isinstance(cmd.command, orders.CreateOrder) and cmd.command.details.voucher_code:
            holder = await uow.orders.voucher_holder(
                cmd.tenant_id, cmd.command.details.voucher_code
            )
        decision = orders.decide(cmd.command, current, cmd.document_id, voucher_holder=holder)
        if isinstance(decision, orders.Rejected):
            rejection = rejection_message(
                self._family, cmd.identity, cmd.command_id, decision.problems, now
            )
            return Decided(accepted=False, messages=[rejection])

        transitions = orders.fold(current, decision.events, cmd.tenant_id, cmd.document_id)
        messages: list[OutboxMessage] = []
        history: list[HistoryEntry] = []
        stock_keys: list[str] = []
        for transition in transitions:
            after = transition.after
            event_id = uuid4()
            event = _wire_event(
                transition,
                event_id=event_id,
                tenant_id=cmd.tenant_id,
                order_id=cmd.document_id,
                version=after.version,
                command_id=cmd.command_id,
                occurred_at=now,
            )
            messages.append(event_message(self._family.topics.events, cmd.document_id, event))
            if isinstance(after, orders.Order):
                snapshot = snapshot_to_wire(after).model_dump_json().encode()
                history.append(
                    HistoryEntry(after.version, cmd.command_id, event_id, event.type, snapshot)
                )
            source = MovementSource(
                type="order", id=cmd.document_id, version=after.version, event_id=event_id
            )
            for m in movements(transition.before, after):
                stock_keys.append(movement_key(cmd.tenant_id, m.warehouse_id, m.sku))
                messages.append(
                    movement_message(
                        self._movements_topic, cmd.tenant_id, m, source, event.type, now
                    )
                )

        final = transitions[-1].after
        if isinstance(final, orders.DeletedOrder):
            await uow.orders.delete(final)
        else:
            previous = current if isinstance(current, orders.Order) else None
            await uow.orders.save(final, history, previous)
        if stock_keys:
            await uow.lock_stock_items(stock_keys)
        return Decided(accepted=True, messages=messages)


def _wire_event(transition: orders.Transition, **metadata: Any) -> wire.OrderEventMessage:
    after = transition.after
    match transition.event:
        case orders.OrderCreated():
            assert isinstance(after, orders.Order)
            return wire.OrderCreated(type="order.created", data=snapshot_to_wire(after), **metadata)
        case orders.OrderUpdated() as updated:
            assert isinstance(after, orders.Order)
            data = wire.OrderUpdateData(
                changed=[part.value for part in updated.parts()], order=snapshot_to_wire(after)
            )
            return wire.OrderUpdated(type="order.updated", data=data, **metadata)
        case orders.OrderStatusChanged(from_status=old, to_status=new, reason=reason):
            data_status = wire.OrderStatusChangeData(
                from_status=wire.OrderStatus(old.value),
                to_status=wire.OrderStatus(new.value),
                reason=wire.CancelReason(reason.value) if reason else None,
            )
            return wire.OrderStatusChanged(
                type="order.status_changed", data=data_status, **metadata
            )
        case orders.OrderDeleted():
            return wire.OrderDeleted(type="order.deleted", **metadata)
        case orders.OrderRedacted(groups=groups):
            return wire.OrderRedacted(
                type="order.redacted", data=groups_to_wire(groups), **metadata
            )
        case orders.OrderRedactionScheduled(groups=groups):
            return wire.OrderRedactionScheduled(
                type="order.redaction_scheduled", data=groups_to_wire(groups), **metadata
            )
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover
