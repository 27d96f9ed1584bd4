"""Random command sequences against a small, independently written reference model.

The reference restates the rules in the plainest imperative form. After every command the real
decide/fold/movements and the reference must agree on acceptance, error codes, events, status,
version, and the stock that the sum of all movements implies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from service.domain import purchase_orders as po
from service.domain.purchase_orders.stock import movements

DOCUMENTS = ["PO-1", "PO-2"]
SKUS = ["A", "B", "C"]
WAREHOUSES = ["W1", "W2"]
STATUSES = ["draft", "open", "receiving", "received", "closed", "cancelled"]
TABLE = {
    "draft": {"open", "cancelled"},
    "open": {"receiving", "cancelled"},
    "receiving": {"received", "cancelled"},
    "received": {"closed"},
    "closed": set(),
    "cancelled": set(),
}
EVENT_NAMES = {
    po.PurchaseOrderCreated: "created",
    po.PurchaseOrderUpdated: "updated",
    po.ShippingDetailsUpdated: "shipping_details_updated",
    po.PurchaseOrderStatusChanged: "status_changed",
    po.ReceiptRecorded: "receipt_recorded",
    po.InvoiceLinked: "invoice_linked",
    po.PurchaseOrderDeleted: "deleted",
}


@dataclass
class RefOrder:
    warehouse: str
    ordered: dict[str, int]
    status: str = "draft"
    version: int = 1
    received: Counter[str] = field(default_factory=Counter)
    receipts: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)


@dataclass
class Reference:
    live: dict[str, RefOrder] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def apply(self, doc: str, command: po.PurchaseOrderCommand) -> tuple[bool, list[str]]:
        """(accepted, event names) or (rejected, sorted error codes)."""
        order = self.live.get(doc)
        version = order.version if order else 0
        errors: list[str] = []
        if command.expected_version is not None and command.expected_version != version:
            errors.append("version_conflict")

        if isinstance(command, po.CreatePurchaseOrder):
            if order or doc in self.deleted:
                errors.append("already_exists")
            errors += duplicate_lines([p.sku for p in command.details.products])
            if errors:
                return False, sorted(errors)
            self.live[doc] = RefOrder(
                command.details.warehouse_id,
                {p.sku: p.quantity for p in command.details.products},
            )
            return True, ["created"]

        if order is None:
            return False, ["not_found"]
        events: list[str] = []
        match command:
            case po.UpdatePurchaseOrder(details=details):
                if order.status != "draft":
                    errors.append("not_editable")
                errors += duplicate_lines([p.sku for p in details.products])
                if not errors:
                    order.warehouse = details.warehouse_id
                    order.ordered = {p.sku: p.quantity for p in details.products}
                    events = ["updated"]
            case po.UpdateShippingDetails():
                if order.status != "open":
                    errors.append("not_editable")
                events = ["shipping_details_updated"]
            case po.ChangePurchaseOrderStatus(status=target, reason=reason):
                if target.value not in TABLE[order.status]:
                    errors.append("invalid_status")
                if reason is not None and target.value != "cancelled":
                    errors.append("invalid_request")
                if not errors:
                    order.status = target.value
                    events = ["status_changed"]
            case po.RecordReceipt(receipt=receipt):
                errors += self.receipt_errors(order, receipt)
                if not errors:
                    if order.status == "open":
                        events.append("status_changed")
                        order.status = "receiving"
                    events.append("receipt_recorded")
                    order.receipts.append(receipt.receipt_id)
                    for line in receipt.lines:
                        order.received[line.sku] += line.quantity
                    if all(order.received[s] >= q for s, q in order.ordered.items()):
                        events.append("status_changed")
                        order.status = "received"
            case po.LinkInvoice(invoice=invoice):
                if order.status in ("draft", "cancelled"):
                    errors.append("invalid_status")
                if invoice.invoice_id in order.invoices:
                    errors.append("already_exists")
                if not errors:
                    order.invoices.append(invoice.invoice_id)
                    events = ["invoice_linked"]
            case po.DeletePurchaseOrder():
                if order.status not in ("draft", "cancelled"):
                    errors.append("invalid_status")
                errors += ["has_dependencies"] * (len(order.receipts) + len(order.invoices))
                if not errors:
                    del self.live[doc]
                    self.deleted.add(doc)
                    return True, ["deleted"]
        if errors:
            return False, sorted(errors)
        order.version += len(events)
        return True, events

    @staticmethod
    def receipt_errors(order: RefOrder, receipt: po.Receipt) -> list[str]:
        errors = []
        if order.status not in ("open", "receiving"):
            errors.append("invalid_status")
        if receipt.receipt_id in order.receipts:
            errors.append("already_exists")
        skus = [line.sku for line in receipt.lines]
        for line in receipt.lines:
            unusable = skus.count(line.sku) > 1 or line.sku not in order.ordered
            too_many = order.received[line.sku] + line.quantity > order.ordered.get(line.sku, 0)
            if unusable or too_many:
                errors.append("invalid_request")
        return errors

    def stock(self) -> Counter[tuple[str, str, str]]:
        expected: Counter[tuple[str, str, str]] = Counter()
        for order in self.live.values():
            for sku, quantity in order.received.items():
                expected[(order.warehouse, "on_hand", sku)] += quantity
            if order.status in ("open", "receiving", "received"):
                for sku, quantity in order.ordered.items():
                    expected[(order.warehouse, "incoming", sku)] += quantity - order.received[sku]
        return +expected


def duplicate_lines(skus: list[str]) -> list[str]:
    return ["invalid_request" for sku in skus if skus.count(sku) > 1]


lines = st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 5)), min_size=1, max_size=3)
expected_version = st.one_of(st.none(), st.integers(0, 6))


@st.composite
def order_details(draw: st.DrawFn) -> po.PurchaseOrderDetails:
    products = tuple(po.ProductLine(sku, q) for sku, q in draw(lines))
    return po.PurchaseOrderDetails("SUP", draw(st.sampled_from(WAREHOUSES)), products)


def receipts(
    line_choices: st.SearchStrategy[list[tuple[str, int]]],
) -> st.SearchStrategy[po.Receipt]:
    return st.builds(
        po.Receipt,
        st.sampled_from(["R1", "R2", "R3", "R4"]),
        line_choices.map(lambda ls: tuple(po.ReceiptLine(s, q) for s, q in ls)),
    )


def any_command(version: st.SearchStrategy[int | None]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(po.CreatePurchaseOrder, order_details(), version),
        st.builds(po.UpdatePurchaseOrder, order_details(), version),
        st.builds(
            po.UpdateShippingDetails,
            st.tuples(
                st.tuples(
                    st.sampled_from(["tracking_number", "shipping_carrier"]), st.text(max_size=5)
                )
            ),
            version,
        ),
        st.builds(
            po.ChangePurchaseOrderStatus,
            st.sampled_from(list(po.Status)),
            st.one_of(st.none(), st.just("changed plans")),
            version,
        ),
        st.builds(po.RecordReceipt, receipts(lines), version),
        st.builds(
            po.LinkInvoice,
            st.builds(po.Invoice, st.sampled_from(["I1", "I2"]), st.just(Decimal("10.00"))),
            version,
        ),
        st.builds(po.DeletePurchaseOrder, version),
    )


def plausible_command(state: po.State | None) -> st.SearchStrategy[Any]:
    """A command the state probably accepts, so sequences get past the first steps."""
    if not isinstance(state, po.PurchaseOrder):
        return st.builds(po.CreatePurchaseOrder, order_details())
    invoice = po.Invoice(f"I{len(state.invoices) + 1}", Decimal("1"))
    moves = [
        st.just(po.LinkInvoice(invoice)),
        st.builds(po.UpdatePurchaseOrder, order_details()),
        st.just(po.UpdateShippingDetails((("tracking_number", "1Z"),))),
    ]
    # Weighted towards moving the order forward: cancelling or deleting ends a sequence early.
    next_status = sorted(po.TRANSITIONS[state.status])
    forward = [s for s in next_status if s is not po.Status.CANCELLED]
    if forward:
        moves += [st.builds(po.ChangePurchaseOrderStatus, st.sampled_from(forward))] * 4
    if po.Status.CANCELLED in next_status:
        moves.append(st.just(po.ChangePurchaseOrderStatus(po.Status.CANCELLED, "changed plans")))
    outstanding = sorted(state.outstanding().items())
    if outstanding and state.status in (po.Status.OPEN, po.Status.RECEIVING):
        line = st.sampled_from(outstanding).flatmap(
            lambda item: st.builds(
                po.ReceiptLine, st.just(item[0]), st.one_of(st.just(1), st.integers(1, item[1]))
            )
        )
        receipt_id = f"R{len(state.receipts) + 1}"
        receipt = line.map(lambda one: po.Receipt(receipt_id, (one,)))
        moves += [st.builds(po.RecordReceipt, receipt)] * 4
    if not next_status:
        moves.append(st.just(po.DeletePurchaseOrder()))
    return st.one_of(moves)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_decisions_and_movements_agree_with_the_reference(data: st.DataObject) -> None:
    reference = Reference()
    states: dict[str, po.State | None] = dict.fromkeys(DOCUMENTS)
    stock: Counter[tuple[str, str, str]] = Counter()
    for _ in range(data.draw(st.integers(1, 40), label="length")):
        doc = data.draw(st.sampled_from(DOCUMENTS), label="document")
        kind = data.draw(st.sampled_from(["plausible", "plausible", "plausible", "any"]))
        strategy = (
            plausible_command(states[doc]) if kind == "plausible" else any_command(expected_version)
        )
        command = data.draw(strategy, label="command")

        expected_ok, expected = reference.apply(doc, command)
        decision = po.decide(command, states[doc], doc)
        if isinstance(decision, po.Rejected):
            event(f"rejected {type(command).__name__}")
            assert not expected_ok, (doc, command, decision)
            assert sorted(p.code.value for p in decision.problems) == expected, (doc, command)
            continue
        assert expected_ok, (doc, command, expected)
        assert [EVENT_NAMES[type(e)] for e in decision.events] == expected
        event(f"accepted {'+'.join(expected)}")
        for transition in po.fold(states[doc], decision.events, "t", doc):
            for movement in movements(transition.before, transition.after):
                stock[(movement.warehouse_id, movement.bucket.value, movement.sku)] += (
                    movement.quantity
                )
            states[doc] = transition.after

        live = states[doc]
        if isinstance(live, po.PurchaseOrder):
            ref = reference.live[doc]
            assert (live.status.value, live.version) == (ref.status, ref.version)
        assert +stock == reference.stock()
