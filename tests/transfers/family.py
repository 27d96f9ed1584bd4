"""The transfer family's one registration: where its messages go, how its commands are read,
who may send them, how its documents are stored, and its rules."""

from __future__ import annotations

from datetime import datetime

from contracts.topics import DocumentTopics
from service.app.family import Family
from service.app.kernel import DocumentRules, EventParts, stateless
from service.app.parse import CommandSpec
from service.app.personal_fields import unless_told_apart
from service.app.wire_json import Fields, Written
from service.domain.permissions import Allowed, Authority, Role
from tests.transfers import domain, wire

TRANSFERS = "transfers"

AUTHORITY = Authority(
    scopes={"transfer.request": "transfers:write", "transfer.ship": "transfers:write"},
    # Warehouse staff and systems move stock between warehouses; customers never do.
    permissions={
        role: {"transfer.request": Allowed(), "transfer.ship": Allowed()}
        for role in (Role.USER, Role.SERVICE, Role.SYSTEM)
    },
)


def command_from_wire(command: wire.TransferCommandMessage) -> domain.Command:
    match command:
        case wire.RequestTransfer(payload=p):
            return domain.RequestTransfer(
                p.sku, p.quantity, p.from_warehouse_id, p.to_warehouse_id, command.expected_version
            )
        case wire.ShipTransfer():
            return domain.ShipTransfer(command.expected_version)


def snapshot(state: domain.State) -> Fields:
    """Built through the model: a family may validate what it writes, at the model's cost."""
    assert isinstance(state, domain.Transfer)
    return wire.TransferSnapshot(
        sku=state.sku,
        quantity=state.quantity,
        from_warehouse_id=state.from_warehouse_id,
        to_warehouse_id=state.to_warehouse_id,
        status=state.status.value,
    ).model_dump()


def wire_event(transition: domain.Transition, data: Written | None) -> EventParts:
    assert data is not None
    match transition.event:
        case domain.TransferRequested():
            return EventParts(wire.TransferRequested, data)
        case domain.TransferShipped():
            return EventParts(wire.TransferShipped, data)


class TransferCodec:
    def status(self, document: domain.State) -> str:
        assert isinstance(document, domain.Transfer)
        return document.status.value

    def load(self, tenant_id: str, document_id: str, version: int, stored: str) -> domain.State:
        s = wire.TransferSnapshot.model_validate_json(stored)
        return domain.Transfer(
            tenant_id,
            document_id,
            domain.Status(s.status),
            version,
            s.sku,
            s.quantity,
            s.from_warehouse_id,
            s.to_warehouse_id,
        )

    def tombstone(
        self, tenant_id: str, document_id: str, version: int, deleted_at: datetime
    ) -> domain.State:
        return domain.DeletedTransfer(tenant_id, document_id, version, deleted_at)


def transfer_family(prefix: str = "") -> Family[domain.Command]:
    return Family(
        name=TRANSFERS,
        topics=DocumentTopics.for_family(TRANSFERS, prefix),
        commands=CommandSpec(
            "transfer_id", wire.TRANSFER_COMMAND, command_from_wire, authority=AUTHORITY
        ),
        rejection_model=wire.TransferRejection,
        preview_model=wire.TransferPreview,
        # A customer-order command sent here by mistake would carry names and addresses.
        seals_dead_letters=unless_told_apart("transfer."),
        rules=DocumentRules(
            begin_run=stateless(domain.decide),
            fold=domain.fold,
            wire_event=wire_event,
            snapshot=snapshot,
            movements=lambda before, after: (),
            movement_source="transfer",
        ),
        codec=TransferCodec(),
        command_prefixes=("transfer.",),
    )
