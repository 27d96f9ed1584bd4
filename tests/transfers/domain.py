"""Stock transfers between two warehouses: requested, then shipped. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.domain import decisions
from service.domain.decisions import Accepted, Rejected
from service.domain.problems import ErrorCode, Problem


class Status(StrEnum):
    REQUESTED = "requested"
    SHIPPED = "shipped"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.SHIPPED}),
    Status.SHIPPED: frozenset(),
}


@dataclass(frozen=True)
class Transfer:
    tenant_id: str
    transfer_id: str
    status: Status
    version: int
    sku: str
    quantity: int
    from_warehouse_id: str
    to_warehouse_id: str

    is_deleted = False

    @property
    def document_id(self) -> str:
        return self.transfer_id


@dataclass(frozen=True)
class DeletedTransfer:
    tenant_id: str
    transfer_id: str
    version: int
    deleted_at: datetime | None = None

    is_deleted = True

    @property
    def document_id(self) -> str:
        return self.transfer_id


State = Transfer | DeletedTransfer


@dataclass(frozen=True)
class RequestTransfer:
    sku: str
    quantity: int
    from_warehouse_id: str
    to_warehouse_id: str
    expected_version: int | None = None


@dataclass(frozen=True)
class ShipTransfer:
    expected_version: int | None = None


Command = RequestTransfer | ShipTransfer


@dataclass(frozen=True)
class TransferRequested:
    command: RequestTransfer


@dataclass(frozen=True)
class TransferShipped:
    pass


Event = TransferRequested | TransferShipped
Transition = decisions.Transition[Event, State]


def decide(command: Command, current: State | None, transfer_id: str) -> Accepted[Event] | Rejected:
    version = current.version if current is not None else 0
    problems = decisions.version_problems(command.expected_version, version)
    match command:
        case RequestTransfer():
            if current is not None:
                problems.append(
                    Problem(ErrorCode.ALREADY_EXISTS, f"transfer {transfer_id} exists", None)
                )
            if command.from_warehouse_id == command.to_warehouse_id:
                problems.append(
                    Problem(
                        ErrorCode.INVALID_REQUEST,
                        "a transfer moves stock between two different warehouses",
                        "payload.to_warehouse_id",
                    )
                )
            if problems:
                return Rejected(tuple(problems))
            return Accepted((TransferRequested(command),))
        case ShipTransfer():
            if not isinstance(current, Transfer):
                return Rejected(
                    (Problem(ErrorCode.NOT_FOUND, f"transfer {transfer_id} not found", None),)
                )
            if Status.SHIPPED not in TRANSITIONS[current.status]:
                problems.append(
                    Problem(
                        ErrorCode.INVALID_STATUS,
                        f"transfer {transfer_id} is {current.status}; it cannot be shipped",
                        None,
                    )
                )
            return Rejected(tuple(problems)) if problems else Accepted((TransferShipped(),))


def evolve(current: State | None, event: Event, tenant_id: str, transfer_id: str) -> State:
    match event:
        case TransferRequested(command=c):
            return Transfer(
                tenant_id,
                transfer_id,
                Status.REQUESTED,
                1,
                c.sku,
                c.quantity,
                c.from_warehouse_id,
                c.to_warehouse_id,
            )
        case TransferShipped():
            assert isinstance(current, Transfer)
            return Transfer(
                tenant_id,
                transfer_id,
                Status.SHIPPED,
                current.version + 1,
                current.sku,
                current.quantity,
                current.from_warehouse_id,
                current.to_warehouse_id,
            )


def fold(
    current: State | None, events: Sequence[Event], tenant_id: str, transfer_id: str
) -> list[Transition]:
    return decisions.fold_events(
        current, events, lambda state, event: evolve(state, event, tenant_id, transfer_id)
    )
