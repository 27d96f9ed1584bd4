"""Decides purchase-order commands and turns accepted ones into events, history and movements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from contracts import purchase_orders as wire
from contracts.inventory import MovementSource, movement_key
from contracts.previews import PurchaseOrderPreview
from contracts.topics import PURCHASE_ORDERS, DocumentTopics
from service.app.family import Decided, Family
from service.app.outcomes import event_actor, event_message, movement_message, rejection_message
from service.app.parse import CommandSpec, ValidCommand
from service.app.personal_fields import unless_told_apart
from service.app.ports import HistoryEntry, OutboxMessage, PurchaseOrderChanges, UnitOfWork
from service.app.purchase_orders.translate import (
    command_from_wire,
    invoice_to_wire,
    receipt_to_wire,
    shipping_details_to_wire,
    snapshot_to_wire,
)
from service.domain import purchase_orders as po
from service.domain.permissions import Access
from service.domain.purchase_orders.stock import movements


def purchase_order_family(prefix: str = "") -> Family[po.PurchaseOrderCommand]:
    return Family(
        name=PURCHASE_ORDERS,
        topics=DocumentTopics.for_family(PURCHASE_ORDERS, prefix),
        commands=CommandSpec(
            "purchase_order_id", wire.PURCHASE_ORDER_COMMAND, command_from_wire, access=_access
        ),
        rejection_model=wire.PurchaseOrderRejection,
        preview_model=PurchaseOrderPreview,
        # An order command sent here by mistake carries names and addresses.
        seals_dead_letters=unless_told_apart("purchase_order."),
    )


@dataclass(frozen=True)
class AcceptedOutput:
    messages: list[OutboxMessage]
    history: list[HistoryEntry]
    stock_keys: list[str]
    """The stock items moved, so their rows can be queued in commit order per item."""


class PurchaseOrderDecider:
    """Decides a batch of purchase-order commands set-based: every touched order is loaded in
    one statement, the commands are decided in memory in order (each sees the state its
    predecessors left), and the final states, history and tombstones are written in one."""

    def __init__(self, family: Family[po.PurchaseOrderCommand], movements_topic: str) -> None:
        self._family = family
        self._movements_topic = movements_topic

    @property
    def family(self) -> Family[po.PurchaseOrderCommand]:
        return self._family

    async def decide(
        self,
        uow: UnitOfWork,
        commands: Sequence[ValidCommand[po.PurchaseOrderCommand]],
        now: datetime,
    ) -> list[Decided]:
        states = await uow.purchase_orders.load_many(
            sorted({(cmd.tenant_id, cmd.document_id) for cmd in commands})
        )
        changes = PurchaseOrderChanges()
        stock_keys: set[str] = set()
        decided = []
        for cmd in commands:
            key = (cmd.tenant_id, cmd.document_id)
            current = states.get(key)
            decision = po.decide(cmd.command, current, cmd.document_id)
            if isinstance(decision, po.Rejected):
                rejection = rejection_message(
                    self._family, cmd.identity, cmd.command_id, decision.problems, now
                )
                decided.append(Decided(accepted=False, messages=[rejection]))
                continue
            transitions = po.fold(current, decision.events, cmd.tenant_id, cmd.document_id)
            output = accepted_messages(
                self._family.topics, self._movements_topic, cmd, transitions, now
            )
            states[key] = transitions[-1].after
            changes.record(transitions[-1].after, output.history)
            stock_keys.update(output.stock_keys)
            decided.append(Decided(accepted=True, messages=output.messages))
        await uow.purchase_orders.save_many(changes)
        # Movements of one stock item queue in commit order: writers of an item serialise.
        await uow.lock_stock_items(sorted(stock_keys))
        return decided


def accepted_messages(
    topics: DocumentTopics,
    movements_topic: str,
    cmd: ValidCommand[po.PurchaseOrderCommand],
    transitions: Sequence[po.Transition],
    occurred_at: datetime,
    new_event_id: Callable[[], UUID] = uuid4,
) -> AcceptedOutput:
    """Per transition: its event, a history entry while the order lives, its stock movements."""
    output = AcceptedOutput([], [], [])
    command_id = cmd.command_id
    for transition in transitions:
        after = transition.after
        event_id = new_event_id()
        # Built once: the created and updated events carry it, and history keeps it.
        snapshot = snapshot_to_wire(after) if isinstance(after, po.PurchaseOrder) else None
        event = _wire_event(
            transition,
            snapshot,
            event_id=event_id,
            tenant_id=after.tenant_id,
            purchase_order_id=after.purchase_order_id,
            version=after.version,
            command_id=command_id,
            occurred_at=occurred_at,
            actor=event_actor(cmd.actor),
        )
        output.messages.append(event_message(topics.events, after.purchase_order_id, event))
        if snapshot is not None:
            output.history.append(
                HistoryEntry(
                    after.version,
                    command_id,
                    event_id,
                    event.type,
                    snapshot.model_dump_json().encode(),
                    cmd.actor,
                )
            )
        source = MovementSource(
            type="purchase_order",
            id=after.purchase_order_id,
            version=after.version,
            event_id=event_id,
        )
        for movement in movements(transition.before, after):
            output.stock_keys.append(
                movement_key(after.tenant_id, movement.warehouse_id, movement.sku)
            )
            output.messages.append(
                movement_message(
                    movements_topic, after.tenant_id, movement, source, event.type, occurred_at
                )
            )
    return output


def _wire_event(
    transition: po.Transition, snapshot: wire.PurchaseOrderSnapshot | None, **metadata: Any
) -> wire.PurchaseOrderEventMessage:
    after = transition.after
    match transition.event:
        case po.PurchaseOrderCreated():
            assert snapshot is not None
            return wire.PurchaseOrderCreated(
                type="purchase_order.created", data=snapshot, **metadata
            )
        case po.PurchaseOrderUpdated():
            assert snapshot is not None
            return wire.PurchaseOrderUpdated(
                type="purchase_order.updated", data=snapshot, **metadata
            )
        case po.ShippingDetailsUpdated(changes=changes):
            assert isinstance(after, po.PurchaseOrder)
            change = wire.ShippingDetailsChange(
                changed_fields=[name for name, _ in changes],
                shipping_details=shipping_details_to_wire(after.details),
            )
            return wire.PurchaseOrderShippingDetailsUpdated(
                type="purchase_order.shipping_details_updated", data=change, **metadata
            )
        case po.PurchaseOrderStatusChanged(from_status=old, to_status=new, reason=reason):
            data = wire.StatusChangeData(from_status=old, to_status=new, reason=reason)
            return wire.PurchaseOrderStatusChanged(
                type="purchase_order.status_changed", data=data, **metadata
            )
        case po.ReceiptRecorded(receipt=receipt):
            assert isinstance(after, po.PurchaseOrder)
            received = after.received()
            progress = [
                wire.LineProgress(sku=line.sku, ordered=line.quantity, received=received[line.sku])
                for line in after.details.products
            ]
            return wire.PurchaseOrderReceiptRecorded(
                type="purchase_order.receipt_recorded",
                data=wire.ReceiptData(receipt=receipt_to_wire(receipt), progress=progress),
                **metadata,
            )
        case po.InvoiceLinked(invoice=invoice):
            return wire.PurchaseOrderInvoiceLinked(
                type="purchase_order.invoice_linked", data=invoice_to_wire(invoice), **metadata
            )
        case po.PurchaseOrderDeleted():
            return wire.PurchaseOrderDeleted(type="purchase_order.deleted", **metadata)
    raise AssertionError(f"unhandled event {transition.event!r}")  # pragma: no cover


def _access(command_type: str, command: po.PurchaseOrderCommand) -> Access:
    if isinstance(command, po.ChangePurchaseOrderStatus):
        return Access(command_type, status=command.status.value)
    return Access(command_type)
