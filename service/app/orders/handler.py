"""Decides customer-order commands and turns accepted ones into an event, history and movements."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
from service.app.ports import HistoryEntry, OrderSave, OutboxMessage, UnitOfWork
from service.domain import orders
from service.domain.orders.stock import movements


def order_family(prefix: str = "") -> Family[orders.CommandForOrders]:
    return Family(
        name=ORDERS,
        topics=DocumentTopics.for_family(ORDERS, prefix),
        commands=CommandSpec(
            "order_id",
            wire.ORDER_COMMAND,
            command_from_wire,
            id_fields={"customer.redact": "customer_id"},
            personal_paths=(
                "payload.shipping_address",
                "payload.billing_address",
                "payload.contact",
            ),
        ),
        rejection_model=wire.OrderRejection,
        seals_dead_letters=True,
    )


class OrderHandler:
    def __init__(self, family: Family[orders.CommandForOrders], movements_topic: str) -> None:
        self._family = family
        self._movements_topic = movements_topic

    @property
    def family(self) -> Family[orders.CommandForOrders]:
        return self._family

    async def handle(
        self, uow: UnitOfWork, cmd: ValidCommand[orders.CommandForOrders], now: datetime
    ) -> Decided:
        command = cmd.command
        if isinstance(command, orders.RedactCustomer):
            return await self._redact_customer(uow, cmd, command, now)
        current = await uow.orders.load(cmd.tenant_id, cmd.document_id)
        holder = None
        if isinstance(command, orders.CreateOrder) and command.details.voucher_code:
            holder = await uow.orders.voucher_holder(cmd.tenant_id, command.details.voucher_code)
        decision = orders.decide(
            command,
            current,
            cmd.document_id,
            voucher_holder=holder,
            customer_erased=await self._stores_data_of_erased_customer(uow, cmd, current),
        )
        if isinstance(decision, orders.Rejected):
            return self._refused(cmd, decision, now)
        messages = await self._apply(uow, cmd, current, decision.events, now)
        return Decided(accepted=True, messages=messages)

    async def _stores_data_of_erased_customer(
        self,
        uow: UnitOfWork,
        cmd: ValidCommand[orders.CommandForOrders],
        current: orders.State | None,
    ) -> bool:
        match cmd.command:
            case orders.CreateOrder(details=details):
                return await uow.orders.customer_erased(cmd.tenant_id, details.customer_id)
            case orders.UpdateOrder() if isinstance(current, orders.Order):
                return await uow.orders.customer_erased(cmd.tenant_id, current.details.customer_id)
        return False

    async def _redact_customer(
        self,
        uow: UnitOfWork,
        cmd: ValidCommand[orders.CommandForOrders],
        command: orders.RedactCustomer,
        now: datetime,
    ) -> Decided:
        tenant = cmd.tenant_id
        loaded: dict[str, orders.Order] = {}
        order_ids = await uow.orders.orders_of_customer(tenant, command.customer_id)
        # Order locks first, then the customer's: the order every writer takes them in.
        await uow.lock_documents([(tenant, order_id) for order_id in order_ids])
        for order_id, order in (await uow.orders.load_many(tenant, order_ids)).items():
            if order.details.customer_id == command.customer_id:
                loaded[order_id] = order
        await uow.orders.lock_customer(tenant, command.customer_id)
        decision = orders.decide_customer_redaction(command, loaded)
        if isinstance(decision, orders.Rejected):
            return self._refused(cmd, decision, now)

        messages: list[OutboxMessage] = []
        erased_now: list[str] = []
        scheduled: list[str] = []
        keys_destroyed = 0
        saves: list[OrderSave] = []
        stock_keys: set[str] = set()
        for order, events in decision.per_order:
            output = self._outputs(replace(cmd, document_id=order.order_id), order, events, now)
            done = output.final
            assert isinstance(done, orders.Order)
            saves.append(OrderSave(done, output.history, order))
            messages += output.messages
            stock_keys.update(output.stock_keys)
            keys_destroyed += len(done.redacted - order.redacted)
            (erased_now if done.redacted > order.redacted else scheduled).append(order.order_id)
        # Every order of the customer in a few statements, however many there are.
        await uow.orders.save_many(saves)
        if stock_keys:
            await uow.lock_stock_items(sorted(stock_keys))
        keys_destroyed += await uow.orders.destroy_dead_letters_of(tenant, command.customer_id)
        redactions = await uow.orders.record_customer_erasure(tenant, command.customer_id)
        receipt = wire.CustomerRedacted(
            type="customer.redacted",
            event_id=uuid4(),
            tenant_id=tenant,
            version=redactions,
            command_id=cmd.command_id,
            occurred_at=now,
            customer_id=command.customer_id,
            data=wire.CustomerRedactionReceipt(
                customer_id=command.customer_id,
                orders_affected=erased_now,
                orders_scheduled=scheduled,
                groups_erased=[wire.DataGroup(g.value) for g in sorted(orders.EVERY_GROUP)],
                keys_destroyed=keys_destroyed,
                completed_at=now,
            ),
        )
        messages.append(event_message(self._family.topics.events, command.customer_id, receipt))
        return Decided(accepted=True, messages=messages)

    def _refused(
        self, cmd: ValidCommand[orders.CommandForOrders], decision: orders.Rejected, now: datetime
    ) -> Decided:
        rejection = rejection_message(
            self._family, cmd.identity, cmd.command_id, decision.problems, now
        )
        return Decided(accepted=False, messages=[rejection])

    async def _apply(
        self,
        uow: UnitOfWork,
        cmd: ValidCommand[orders.CommandForOrders],
        current: orders.State | None,
        events: tuple[orders.OrderEvent, ...],
        now: datetime,
    ) -> list[OutboxMessage]:
        """The events' outputs, then the new state written."""
        output = self._outputs(cmd, current, events, now)
        if isinstance(output.final, orders.DeletedOrder):
            await uow.orders.delete(output.final)
        else:
            previous = current if isinstance(current, orders.Order) else None
            await uow.orders.save(output.final, output.history, previous)
        if output.stock_keys:
            await uow.lock_stock_items(output.stock_keys)
        return output.messages

    def _outputs(
        self,
        cmd: ValidCommand[orders.CommandForOrders],
        current: orders.State | None,
        events: tuple[orders.OrderEvent, ...],
        now: datetime,
    ) -> OrderOutput:
        """Per event: the wire event, a history entry, stock movements; and the final state."""
        transitions = orders.fold(current, events, cmd.tenant_id, cmd.document_id)
        output = OrderOutput(transitions[-1].after)
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
            output.messages.append(
                event_message(self._family.topics.events, cmd.document_id, event)
            )
            if isinstance(after, orders.Order):
                snapshot = snapshot_to_wire(after).model_dump_json().encode()
                output.history.append(
                    HistoryEntry(after.version, cmd.command_id, event_id, event.type, snapshot)
                )
            source = MovementSource(
                type="order", id=cmd.document_id, version=after.version, event_id=event_id
            )
            for m in movements(transition.before, after):
                output.stock_keys.append(movement_key(cmd.tenant_id, m.warehouse_id, m.sku))
                output.messages.append(
                    movement_message(
                        self._movements_topic, cmd.tenant_id, m, source, event.type, now
                    )
                )
        return output


@dataclass
class OrderOutput:
    """What a command's events produce: the messages, the final state, history, stock items."""

    final: orders.State
    messages: list[OutboxMessage] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    stock_keys: list[str] = field(default_factory=list)


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
