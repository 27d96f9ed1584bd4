"""What the customer-order family needs from storage beyond what every family's does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from contracts.topics import ORDERS
from service.app.ports import Changes, DocumentKind, DocumentRepository, UnitOfWork
from service.domain import orders
from service.errors import PersonalDataNotOpenedError

ORDER_DOCUMENTS: DocumentKind[orders.State] = DocumentKind(ORDERS)
"""Customer orders are stored by a repository of their own (relational rows and encrypted
personal data, never a JSON document), which every store provides."""


class OrderRepository(DocumentRepository[orders.State], Protocol):
    async def voucher_holders(
        self, vouchers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """Lock the (tenant, voucher code) pairs for this transaction and return the live order
        holding each one that is held."""

    async def lock_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        """Serialise an erasure of these (tenant, customer) pairs with writes of their data."""

    async def erased_customers(self, customers: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the (tenant, customer) pairs that were erased; locks them until commit."""

    async def orders_of_customer(self, tenant_id: str, customer_id: str) -> list[str]:
        """The ids of the customer's live orders in the tenant."""

    async def destroy_dead_letters_of(self, tenant_id: str, customer_id: str) -> int:
        """Destroy the keys of dead letters about the customer or any order of theirs; returns
        how many."""

    async def record_customer_erasure(self, tenant_id: str, customer_id: str) -> int:
        """Mark the customer erased; returns how many redactions they have had."""


def order_repository(uow: UnitOfWork) -> OrderRepository:
    """The family's repository, with the reads and locks only orders need."""
    return cast(OrderRepository, uow.documents(ORDER_DOCUMENTS))


def refuse_unopened_changes(changes: Changes[orders.State]) -> None:
    """Every order store calls this before it writes anything (previews too, so that a preview
    answers as the command would): an order loaded sealed keeps both addresses as loaded, and
    no other order holds orders.SEALED (orders.unopened_change)."""
    for save in changes.saves():
        loaded = save.previous.details if isinstance(save.previous, orders.Order) else None
        for version in save.versions:
            state = version.state
            assert isinstance(state, orders.Order), "a saved order is live"
            if role := orders.unopened_change(loaded, state.details):
                raise PersonalDataNotOpenedError((state.tenant_id, state.order_id), role)
