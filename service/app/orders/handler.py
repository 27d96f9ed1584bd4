"""Decides customer-order commands in batches and turns accepted ones into events, history and
movements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from contracts import orders as wire
from contracts.previews import OrderPreview
from contracts.topics import ORDERS, DocumentTopics
from service.app.family import Decided, Family
from service.app.orders.erasure import redact_customer
from service.app.orders.outputs import order_outputs
from service.app.orders.translate import command_from_wire
from service.app.outcomes import rejection_message
from service.app.parse import CommandSpec, ValidCommand
from service.app.personal_fields import always
from service.app.ports import DocumentKey, OrderChanges, UnitOfWork
from service.domain import orders
from service.domain.permissions import Access

OrderCommand = ValidCommand[orders.CommandForOrders]


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
            with_actor=_with_actor,
            access=_access,
        ),
        rejection_model=wire.OrderRejection,
        preview_model=OrderPreview,
        seals_dead_letters=always,
    )


class OrderDecider:
    """Decides a batch of customer-order commands set-based: the touched orders, the vouchers
    the creates claim and the customers whose data they store are read in a statement each,
    the commands are decided in memory in order (each sees what its predecessors left), and
    the results are written in a few statements. A customer.redact, which reaches across all
    of a customer's orders, is decided between the runs of commands around it."""

    def __init__(self, family: Family[orders.CommandForOrders], movements_topic: str) -> None:
        self._family = family
        self._movements_topic = movements_topic

    @property
    def family(self) -> Family[orders.CommandForOrders]:
        return self._family

    async def decide(
        self, uow: UnitOfWork, commands: Sequence[OrderCommand], now: datetime
    ) -> list[Decided]:
        decided: list[Decided] = []
        stock_keys: set[str] = set()
        for run in _runs(commands):
            if isinstance(run[0].command, orders.RedactCustomer):
                [cmd] = run
                decided.append(
                    await redact_customer(
                        uow, self._family, self._movements_topic, cmd, now, stock_keys
                    )
                )
            else:
                decided += await self._decide_run(uow, run, now, stock_keys)
        # Movements of one stock item queue in commit order: writers of an item serialise.
        await uow.lock_stock_items(sorted(stock_keys))
        return decided

    async def _decide_run(
        self,
        uow: UnitOfWork,
        run: Sequence[OrderCommand],
        now: datetime,
        stock_keys: set[str],
    ) -> list[Decided]:
        states = await uow.orders.load_states(sorted({_key(cmd) for cmd in run}))
        changes = OrderChanges(dict(states))
        holders = await uow.orders.voucher_holders(sorted(filter(None, map(_voucher, run))))
        erased = await uow.orders.erased_customers(
            sorted({c for cmd in run if (c := _customer(cmd, states.get(_key(cmd))))})
        )
        decided = []
        for cmd in run:
            key = _key(cmd)
            current = states.get(key)
            voucher = _voucher(cmd)
            customer = _customer(cmd, current)
            command = cmd.command
            assert not isinstance(command, orders.RedactCustomer), "runs hold no redactions"
            decision = orders.decide(
                command,
                current,
                cmd.document_id,
                voucher_holder=holders.get(voucher) if voucher else None,
                customer_erased=customer in erased,
            )
            if isinstance(decision, orders.Rejected):
                rejection = rejection_message(
                    self._family, cmd.identity, cmd.command_id, decision.problems, now
                )
                decided.append(Decided(accepted=False, messages=[rejection]))
                continue
            transitions = orders.fold(current, decision.events, *key)
            output = order_outputs(
                self._family.topics, self._movements_topic, cmd, transitions, now
            )
            states[key] = output.final
            changes.record(output.final, output.versions)
            _follow_voucher(holders, current, output.final)
            stock_keys.update(output.stock_keys)
            decided.append(Decided(accepted=True, messages=output.messages))
        await uow.orders.save_many(changes.saves())
        await uow.orders.delete_many(changes.deletions())
        return decided


def _with_actor(
    command: orders.CommandForOrders, actor_type: str, actor_id: str
) -> orders.CommandForOrders:
    return replace(command, actor=orders.Actor(actor_type, actor_id))


def _access(command_type: str, command: orders.CommandForOrders) -> Access:
    match command:
        case orders.ChangeOrderStatus(status=status):
            return Access(command_type, status=status.value)
        case orders.UpdateOrder():
            return Access(command_type, parts=tuple(part.value for part in command.parts()))
    return Access(command_type)


def _runs(commands: Sequence[OrderCommand]) -> Iterator[Sequence[OrderCommand]]:
    """The commands in order, as runs of order commands and customer.redacts on their own."""
    run: list[OrderCommand] = []
    for cmd in commands:
        if isinstance(cmd.command, orders.RedactCustomer):
            if run:
                yield run
                run = []
            yield [cmd]
        else:
            run.append(cmd)
    if run:
        yield run


def _key(cmd: OrderCommand) -> DocumentKey:
    return (cmd.tenant_id, cmd.document_id)


def _voucher(cmd: OrderCommand) -> tuple[str, str] | None:
    """The (tenant, voucher code) a create claims."""
    match cmd.command:
        case orders.CreateOrder(details=orders.OrderDetails(voucher_code=str(code))):
            return (cmd.tenant_id, code)
    return None


def _customer(cmd: OrderCommand, current: orders.State | None) -> tuple[str, str] | None:
    """The (tenant, customer) whose personal data the command would store."""
    match cmd.command:
        case orders.CreateOrder(details=details):
            return (cmd.tenant_id, details.customer_id)
        case orders.UpdateOrder() if isinstance(current, orders.Order):
            return (cmd.tenant_id, current.details.customer_id)
    return None


def _follow_voucher(
    holders: dict[tuple[str, str], str], before: orders.State | None, after: orders.State
) -> None:
    """Keep the batch's view of voucher holders as its commands take and free vouchers."""
    code = orders.held_voucher(after) or orders.held_voucher(before)
    if code is None:
        return
    voucher = (after.tenant_id, code)
    if orders.held_voucher(after) is not None:
        holders[voucher] = after.order_id
    elif holders.get(voucher) == after.order_id:
        del holders[voucher]
