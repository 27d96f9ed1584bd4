"""Random customer-order command sequences against a small, independently written reference.

The sequences mix creates, edits, status changes and deletes with vouchers that collide and
actors that are not the owner. After every command the real decide/fold/movements and the
reference must agree on acceptance, error codes, status, version and the stock that the sum of
all movements implies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain import orders
from service.domain.orders.stock import movements

DOCUMENTS = ["O-1", "O-2", "O-3"]
CUSTOMERS = ["C-1", "C-2"]
SKUS = ["A", "B"]
TABLE = {
    "placed": {"ready", "cancelled"},
    "ready": {"fulfilled", "cancelled"},
    "fulfilled": {"sent"},
    "sent": {"delivered"},
    "delivered": set(),
    "cancelled": set(),
}
HOME = orders.Address("N", ("L",), "C", "P", "DE")


@dataclass
class RefOrder:
    customer: str
    quantities: dict[str, int]
    voucher: str | None
    status: str = "placed"
    version: int = 1


@dataclass
class Reference:
    live: dict[str, RefOrder] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def voucher_holder(self, code: str | None) -> str | None:
        for doc, order in self.live.items():
            if code is not None and order.voucher == code and order.status != "cancelled":
                return doc
        return None

    def apply(self, doc: str, command: orders.OrderCommand) -> tuple[bool, list[str]]:
        """(accepted, []) or (rejected, sorted error codes)."""
        actor = command.actor
        customer_actor = actor.id if actor is not None and actor.type == "customer" else None
        order = self.live.get(doc)
        errors: list[str] = []
        if isinstance(command, orders.CreateOrder):
            d = command.details
            if customer_actor is not None and customer_actor != d.customer_id:
                # For somebody else: refused on that alone, nothing stored is looked at.
                return False, sorted(["invalid_request", *line_errors(d.items)])
            taken = doc in self.deleted or (order is not None and order.customer != customer_actor)
            if customer_actor is not None and taken:
                # Someone else's, or deleted: nothing more is looked at (no version, voucher).
                return False, sorted(["already_exists", *line_errors(d.items)])
            if command.expected_version not in (None, order.version if order else 0):
                errors.append("version_conflict")
            if order or doc in self.deleted:
                errors.append("already_exists")
            errors += line_errors(d.items)
            holder = self.voucher_holder(d.voucher_code)
            if holder is not None and holder != doc:
                errors.append("voucher_in_use")
            if errors:
                return False, sorted(errors)
            quantities = {i.sku: i.quantity for i in d.items}
            self.live[doc] = RefOrder(d.customer_id, quantities, d.voucher_code)
            return True, []

        if order is None or (customer_actor is not None and customer_actor != order.customer):
            return False, ["not_found"]
        if command.expected_version not in (None, order.version):
            errors.append("version_conflict")
        match command:
            case orders.UpdateOrder():
                given_parts = [
                    name
                    for name, value in (
                        ("items", command.items),
                        ("shipping", command.shipping_address),
                        ("billing", command.billing_address),
                    )
                    if value is not None
                ]
                if not given_parts:
                    errors.append("invalid_request")
                elif order.status not in ("placed", "ready"):
                    errors.append("not_editable")
                else:
                    if order.status == "ready":
                        errors += ["not_editable" for p in given_parts if p != "shipping"]
                    if command.items is not None:
                        errors += line_errors(command.items)
            case orders.ChangeOrderStatus():
                if command.status.value not in TABLE[order.status]:
                    errors.append("invalid_status")
                if command.reason is not None and command.status.value != "cancelled":
                    errors.append("invalid_request")
            case orders.DeleteOrder():
                if order.status != "placed":
                    errors.append("already_fulfilled")
        if errors:
            return False, sorted(errors)
        match command:
            case orders.UpdateOrder(items=items) if items is not None:
                order.quantities = {i.sku: i.quantity for i in items}
            case orders.ChangeOrderStatus(status=status):
                order.status = status.value
            case orders.DeleteOrder():
                del self.live[doc]
                self.deleted.add(doc)
                return True, []
        order.version += 1
        return True, []

    def stock(self) -> dict[tuple[str, str], int]:
        total: Counter[tuple[str, str]] = Counter()
        for order in self.live.values():
            for sku, quantity in order.quantities.items():
                if order.status in ("ready", "fulfilled"):
                    total[("reserved", sku)] += quantity
                if order.status in ("sent", "delivered"):
                    total[("on_hand", sku)] -= quantity
        return nonzero(total)


def nonzero(stock: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    # Counter's unary + would also drop the negative on_hand quantities that shipping causes.
    return {key: quantity for key, quantity in stock.items() if quantity}


def line_errors(items: tuple[orders.Item, ...]) -> list[str]:
    skus = Counter(i.sku for i in items)
    errors = ["invalid_request" for i in items if skus[i.sku] > 1]
    return errors + ["invalid_request" for i in items if i.currency != items[0].currency]


items_strategy = st.lists(
    st.builds(
        orders.Item,
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 3),
        unit_price=st.just(Decimal("1.00")),
        currency=st.sampled_from(["EUR", "EUR", "EUR", "USD"]),
    ),
    min_size=1,
    max_size=3,
).map(tuple)
actor_strategy = st.one_of(
    st.none(),
    st.just(orders.Actor("user", "staff-1")),
    st.builds(orders.Actor, st.just("customer"), st.sampled_from(CUSTOMERS)),
)
version_strategy = st.one_of(st.none(), st.none(), st.integers(0, 4))


def command_strategy(current_status: str | None) -> st.SearchStrategy[orders.OrderCommand]:
    """Any command, with status changes leaning towards moves the table allows, so that long
    sequences reach the late statuses (sent, delivered) and their stock movements."""
    successors = sorted(TABLE.get(current_status or "", set()))
    statuses = st.sampled_from([orders.Status(s) for s in successors] or list(orders.Status))
    status_change = st.builds(
        orders.ChangeOrderStatus,
        status=st.one_of(statuses, statuses, st.sampled_from(list(orders.Status))),
        reason=st.sampled_from([None, None, orders.CancelReason.CUSTOMER]),
        expected_version=version_strategy,
        actor=actor_strategy,
    )
    return st.one_of(
        st.builds(
            orders.CreateOrder,
            details=st.builds(
                orders.OrderDetails,
                customer_id=st.sampled_from(CUSTOMERS),
                warehouse_id=st.just("W"),
                items=items_strategy,
                shipping_address=st.just(HOME),
                billing_address=st.just(HOME),
                voucher_code=st.sampled_from([None, "V1", "V2"]),
            ),
            expected_version=version_strategy,
            actor=actor_strategy,
        ),
        st.builds(
            orders.UpdateOrder,
            items=st.one_of(st.none(), items_strategy),
            shipping_address=st.sampled_from([None, HOME]),
            billing_address=st.sampled_from([None, HOME]),
            expected_version=version_strategy,
            actor=actor_strategy,
        ),
        status_change,
        status_change,
        status_change,
        st.builds(orders.DeleteOrder, expected_version=version_strategy, actor=actor_strategy),
    )


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_decisions_and_movements_agree_with_the_reference(data: st.DataObject) -> None:
    reference = Reference()
    states: dict[str, orders.State] = {}
    stock: Counter[tuple[str, str]] = Counter()
    for _ in range(data.draw(st.integers(0, 45), label="steps")):
        doc = data.draw(st.sampled_from(DOCUMENTS))
        live = reference.live.get(doc)
        command = data.draw(command_strategy(live.status if live else None))
        current = states.get(doc)
        holder = None
        if isinstance(command, orders.CreateOrder):
            holder = reference.voucher_holder(command.details.voucher_code)
        decision = orders.decide(command, current, doc, voucher_holder=holder)
        expected_ok, expected_errors = reference.apply(doc, command)

        if isinstance(decision, orders.Rejected):
            assert not expected_ok, (doc, command, decision)
            assert sorted(p.code.value for p in decision.problems) == expected_errors
            continue
        assert expected_ok, (doc, command, expected_errors)
        for transition in orders.fold(current, decision.events, "t", doc):
            for m in movements(transition.before, transition.after):
                stock[(m.bucket.value, m.sku)] += m.quantity
            states[doc] = transition.after

        after = states[doc]
        if isinstance(after, orders.Order):
            ref = reference.live[doc]
            assert (after.status.value, after.version) == (ref.status, ref.version)
        else:
            assert doc in reference.deleted
        assert nonzero(stock) == reference.stock()
