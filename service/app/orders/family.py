"""The customer-order family: its registration, and what the kernel asks of it (the rules, the
preloads its decisions need, the erasure of a customer, decided on its own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

from contracts import orders as wire
from contracts.previews import OrderPreview
from contracts.state import OrderState
from contracts.topics import ORDERS, DocumentTopics
from service.app.family import Family
from service.app.kernel import Decision, DocumentRules
from service.app.orders.erasure import redact_customer
from service.app.orders.events import wire_event
from service.app.orders.ports import OrderRepository
from service.app.orders.translate import command_from_wire, snapshot_to_wire
from service.app.parse import CommandSpec, ValidCommand
from service.app.personal_fields import always
from service.app.ports import DocumentKey, DocumentRepository
from service.app.state_topic import StateRules
from service.domain import orders
from service.domain.orders.stock import movements
from service.domain.permissions import ORDERS_AUTHORITY, Access

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
            authority=ORDERS_AUTHORITY,
        ),
        rejection_model=wire.OrderRejection,
        preview_model=OrderPreview,
        seals_dead_letters=always,
        rules=RULES,
        command_prefixes=("order.", "customer."),
    )


def _shown(state: orders.State) -> bool:
    """Live and nothing of it erased. Once any of an order's personal data is erased its state
    would name a customer who asked to be forgotten, so it is never published again (a
    tombstone follows the erasure). A redaction only scheduled hides nothing yet: the order is
    still being fulfilled, with its data, until the redaction runs."""
    return isinstance(state, orders.Order) and not state.redacted


RULES: DocumentRules[orders.CommandForOrders, orders.State, orders.OrderEvent] = DocumentRules(
    begin_run=lambda uow, repository, run, states: OrderRun.begin(repository, run, states),
    fold=orders.fold,
    wire_event=wire_event,
    snapshot=lambda state: snapshot_to_wire(_live(state)),
    movements=movements,
    movement_source="order",
    state=StateRules(shown=_shown, model=OrderState),
    reads_personal_data=orders.reads_personal_data,
    alone=lambda command: isinstance(command, orders.RedactCustomer),
    decide_alone=redact_customer,
)


@dataclass
class OrderRun:
    """A run of order commands with what their decisions need besides the order: who holds the
    vouchers the creates claim, and which of the customers whose data they store were erased.
    Both are read (and locked) once for the run, and kept current as its commands change them."""

    holders: dict[tuple[str, str], str]
    erased: set[tuple[str, str]]

    @classmethod
    async def begin(
        cls,
        repository: DocumentRepository[orders.State],
        run: Sequence[OrderCommand],
        states: dict[DocumentKey, orders.State],
    ) -> OrderRun:
        orders_store = cast(OrderRepository, repository)
        holders = await orders_store.voucher_holders(sorted(filter(None, map(_voucher, run))))
        erased = await orders_store.erased_customers(
            sorted({c for cmd in run if (c := _customer(cmd, states.get(_key(cmd))))})
        )
        return cls(holders, erased)

    def decide(self, cmd: OrderCommand, current: orders.State | None) -> Decision:
        command = cmd.command
        assert not isinstance(command, orders.RedactCustomer), "runs hold no redactions"
        voucher = _voucher(cmd)
        return orders.decide(
            command,
            current,
            cmd.document_id,
            voucher_holder=self.holders.get(voucher) if voucher else None,
            customer_erased=_customer(cmd, current) in self.erased,
        )

    def accepted(self, before: orders.State | None, after: orders.State) -> None:
        """Keep the run's view of voucher holders as its commands take and free vouchers."""
        code = orders.held_voucher(after) or orders.held_voucher(before)
        if code is None:
            return
        voucher = (after.tenant_id, code)
        if orders.held_voucher(after) is not None:
            self.holders[voucher] = after.order_id
        elif self.holders.get(voucher) == after.order_id:
            del self.holders[voucher]


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


def _live(state: orders.State) -> orders.Order:
    assert isinstance(state, orders.Order), "only a live order has a snapshot"
    return state
