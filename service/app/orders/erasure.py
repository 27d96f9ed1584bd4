"""Erasing a customer: every order of theirs redacted (or scheduled), their dead letters'
keys destroyed, and a receipt, inside the batch's transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from contracts import orders as wire
from service.app.family import Decided, Family
from service.app.orders.outputs import order_outputs
from service.app.outcomes import event_actor, event_message, rejection_message
from service.app.parse import ValidCommand
from service.app.ports import OrderSave, OutboxMessage, UnitOfWork
from service.domain import orders


async def redact_customer(
    uow: UnitOfWork,
    family: Family[orders.CommandForOrders],
    movements_topic: str,
    cmd: ValidCommand[orders.CommandForOrders],
    now: datetime,
    stock_keys: set[str],
) -> Decided:
    """Decide a customer.redact; the stock items its orders move are added to `stock_keys`."""
    command = cmd.command
    assert isinstance(command, orders.RedactCustomer)
    tenant = cmd.tenant_id
    order_ids = await uow.orders.orders_of_customer(tenant, command.customer_id)
    # Order locks first, then the customer's: the order every writer takes them in.
    await uow.lock_documents([(tenant, order_id) for order_id in order_ids])
    loaded = {
        order_id: order
        for order_id, order in (await uow.orders.load_many(tenant, order_ids)).items()
        if order.details.customer_id == command.customer_id
    }
    await uow.orders.lock_customers([(tenant, command.customer_id)])
    decision = orders.decide_customer_redaction(command, loaded)
    if isinstance(decision, orders.Rejected):
        rejection = rejection_message(family, cmd.identity, cmd.command_id, decision.problems, now)
        return Decided(accepted=False, messages=[rejection])

    messages: list[OutboxMessage] = []
    erased_now: list[str] = []
    scheduled: list[str] = []
    keys_destroyed = 0
    saves: list[OrderSave] = []
    for order, events in decision.per_order:
        transitions = orders.fold(order, events, tenant, order.order_id)
        output = order_outputs(family.topics, movements_topic, cmd, transitions, now)
        done = output.final
        assert isinstance(done, orders.Order)
        saves.append(OrderSave(order, output.versions))
        messages += output.messages
        stock_keys.update(output.stock_keys)
        keys_destroyed += len(done.redacted - order.redacted)
        (erased_now if done.redacted > order.redacted else scheduled).append(order.order_id)
    # Their dead letters first, so that those of orders erased just now are counted too.
    keys_destroyed += await uow.orders.destroy_dead_letters_of(tenant, command.customer_id)
    # Every order of the customer in a few statements, however many there are.
    await uow.orders.save_many(saves)
    redactions = await uow.orders.record_customer_erasure(tenant, command.customer_id)
    receipt = wire.CustomerRedacted(
        type="customer.redacted",
        event_id=uuid4(),
        tenant_id=tenant,
        version=redactions,
        command_id=cmd.command_id,
        occurred_at=now,
        actor=event_actor(cmd.actor),
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
    messages.append(event_message(family.topics.events, command.customer_id, receipt))
    return Decided(accepted=True, messages=messages)
