"""Erasing a customer: every order of theirs redacted (or scheduled), their dead letters'
keys destroyed, and a receipt, inside the batch's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from contracts import orders as wire
from service.app.family import Decided, EventRef
from service.app.messages import WireEvent, event_actor, event_message
from service.app.orders.ports import order_repository
from service.app.parse import ValidCommand
from service.app.ports import Changes, OutboxMessage, UnitOfWork
from service.domain import orders

if TYPE_CHECKING:
    from service.app.kernel import DocumentDecider


async def redact_customer(
    kernel: DocumentDecider[orders.CommandForOrders],
    uow: UnitOfWork,
    cmd: ValidCommand[orders.CommandForOrders],
    now: datetime,
    stock_keys: set[str],
) -> Decided:
    """Decide a customer.redact; the stock items its orders move are added to `stock_keys`."""
    command = cmd.command
    assert isinstance(command, orders.RedactCustomer)
    tenant = cmd.tenant_id
    repository = order_repository(uow)
    order_ids = await repository.orders_of_customer(tenant, command.customer_id)
    # Order locks first, then the customer's: the order every writer takes them in.
    await uow.lock_documents([(tenant, order_id) for order_id in order_ids])
    # Erasing destroys keys and reads nothing: the orders stay sealed.
    states = await repository.load_many(
        [(tenant, order_id) for order_id in order_ids],
        personal_data=orders.reads_personal_data(command),
    )
    loaded = {
        order.order_id: order
        for order in states.values()
        if isinstance(order, orders.Order) and order.details.customer_id == command.customer_id
    }
    await repository.lock_customers([(tenant, command.customer_id)])
    decision = orders.decide_customer_redaction(command, loaded)
    if isinstance(decision, orders.Rejected):
        return kernel.rejected(cmd, decision.problems, now)

    messages: list[OutboxMessage] = []
    refs: list[EventRef] = []
    erased_now: list[str] = []
    scheduled: list[str] = []
    keys_destroyed = 0
    changes: Changes[orders.State] = Changes(dict(states))
    for order, events in decision.per_order:
        transitions = orders.fold(order, events, tenant, order.order_id)
        output = kernel.outputs(cmd, transitions, now)
        done = output.final
        assert isinstance(done, orders.Order)
        changes.record(done, output.versions)
        messages += output.messages
        refs += output.events
        stock_keys.update(output.stock_keys)
        keys_destroyed += len(done.redacted - order.redacted)
        (erased_now if done.redacted > order.redacted else scheduled).append(order.order_id)
    # Their dead letters first, so that those of orders erased just now are counted too.
    keys_destroyed += await repository.destroy_dead_letters_of(tenant, command.customer_id)
    # Every order of the customer in a few statements, however many there are.
    await repository.save_many(changes)
    redactions = await repository.record_customer_erasure(tenant, command.customer_id)
    receipt = wire.CustomerRedacted(
        type="customer.redacted",
        event_id=kernel.new_event_id(),
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
    messages.append(event_message(kernel.family, command.customer_id, WireEvent.of(receipt)))
    receipt_ref = EventRef(receipt.event_id, receipt.type, redactions, command.customer_id)
    return Decided(True, messages, [*refs, receipt_ref])
