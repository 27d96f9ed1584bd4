"""decide() for customer orders: the table, editing, deletion, vouchers, ownership, movements."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

import pytest

from service.domain import orders
from service.domain.orders.stock import movements
from service.domain.problems import ErrorCode
from service.domain.stock import Bucket, Movement

ALL = [s.value for s in orders.Status]
ALLOWED = {
    ("placed", "ready"),
    ("placed", "cancelled"),
    ("ready", "fulfilled"),
    ("ready", "cancelled"),
    ("fulfilled", "sent"),
    ("sent", "delivered"),
}
HOME = orders.Address("Ada Lovelace", ("1 Analytical Way",), "London", "N1 9GU", "GB")
OFFICE = orders.Address("Ada Lovelace", ("2 Engine St",), "London", "EC1 1AA", "GB", "+44 20 1")
CUSTOMER = orders.Actor("customer", "CUST-1")
STRANGER = orders.Actor("customer", "CUST-2")
STAFF = orders.Actor("user", "agent-7")


def item(
    sku: str = "A", quantity: int = 2, price: str = "9.50", currency: str = "EUR"
) -> orders.Item:
    return orders.Item(sku, quantity, Decimal(price), currency)


def details(**overrides: object) -> orders.OrderDetails:
    base = orders.OrderDetails("CUST-1", "WH-1", (item("A", 2), item("B", 3)), HOME, HOME)
    return replace(base, **overrides)  # type: ignore[arg-type]


def order(status: str = "placed", version: int = 2, **overrides: object) -> orders.Order:
    base = orders.Order("t", "O-1", orders.Status(status), version, details())
    return replace(base, **overrides)  # type: ignore[arg-type]


def decide(
    command: orders.OrderCommand, current: orders.State | None, voucher_holder: str | None = None
) -> orders.Decision:
    return orders.decide(command, current, "O-1", voucher_holder=voucher_holder)


def problems(
    decision: orders.Decision | orders.CustomerErasure,
) -> list[tuple[ErrorCode, str | None]]:
    assert isinstance(decision, orders.Rejected), decision
    return [(p.code, p.field) for p in decision.problems]


def messages(decision: orders.Decision) -> list[str]:
    assert isinstance(decision, orders.Rejected), decision
    return [p.message for p in decision.problems]


def after(current: orders.State | None, decision: orders.Decision) -> orders.State:
    assert isinstance(decision, orders.Accepted), decision
    return orders.fold(current, decision.events, "t", "O-1")[-1].after


# Create.


def test_an_order_starts_placed_at_version_one() -> None:
    created = after(None, decide(orders.CreateOrder(details()), None))
    assert isinstance(created, orders.Order)
    assert (created.status, created.version) == (orders.Status.PLACED, 1)
    assert created.total() == Decimal("47.50")


def test_a_voucher_held_by_another_order_is_in_use() -> None:
    command = orders.CreateOrder(details(voucher_code="SPRING"))
    assert problems(decide(command, None, voucher_holder="O-9")) == [
        (ErrorCode.VOUCHER_IN_USE, "payload.voucher_code")
    ]
    assert isinstance(decide(command, None, voucher_holder=None), orders.Accepted)


def test_items_list_each_sku_once_in_one_currency() -> None:
    lines = (item("A"), item("B", currency="USD"), item("A"))
    assert problems(decide(orders.CreateOrder(details(items=lines)), None)) == [
        (ErrorCode.INVALID_REQUEST, "payload.items.0.sku"),
        (ErrorCode.INVALID_REQUEST, "payload.items.2.sku"),
        (ErrorCode.INVALID_REQUEST, "payload.items.1.currency"),
    ]


def test_a_customer_places_orders_only_for_themselves() -> None:
    mine = orders.CreateOrder(details(), actor=CUSTOMER)
    theirs = orders.CreateOrder(details(), actor=STRANGER)
    assert isinstance(decide(mine, None), orders.Accepted)
    assert problems(decide(theirs, None)) == [(ErrorCode.INVALID_REQUEST, "payload.customer_id")]


def test_existing_and_deleted_ids_are_not_reused() -> None:
    tombstone = orders.DeletedOrder("t", "O-1", 3)
    assert problems(decide(orders.CreateOrder(details()), order())) == [
        (ErrorCode.ALREADY_EXISTS, "order_id")
    ]
    assert problems(decide(orders.CreateOrder(details()), tombstone)) == [
        (ErrorCode.ALREADY_EXISTS, "order_id")
    ]


# The status table, both ways.


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_every_move_in_the_table_is_accepted(current: str, target: str) -> None:
    change = orders.ChangeOrderStatus(orders.Status(target))
    moved = after(order(current), decide(change, order(current)))
    assert isinstance(moved, orders.Order)
    assert (moved.status.value, moved.version) == (target, 3)


@pytest.mark.parametrize(("current", "target"), sorted(set(itertools.product(ALL, ALL)) - ALLOWED))
def test_every_move_outside_the_table_is_invalid_status(current: str, target: str) -> None:
    change = orders.ChangeOrderStatus(orders.Status(target))
    assert problems(decide(change, order(current))) == [
        (ErrorCode.INVALID_STATUS, "payload.status")
    ]


def test_a_reason_goes_only_with_a_cancel_and_is_kept() -> None:
    cancel = orders.ChangeOrderStatus(orders.Status.CANCELLED, orders.CancelReason.FRAUD)
    cancelled = after(order("ready"), decide(cancel, order("ready")))
    assert isinstance(cancelled, orders.Order)
    assert cancelled.cancel_reason is orders.CancelReason.FRAUD
    ready = orders.ChangeOrderStatus(orders.Status.READY, orders.CancelReason.OTHER)
    assert problems(decide(ready, order())) == [(ErrorCode.INVALID_REQUEST, "payload.reason")]


# Update.


def test_a_placed_order_takes_new_items_and_both_addresses() -> None:
    update = orders.UpdateOrder(
        items=(item("C", 1),), shipping_address=OFFICE, billing_address=OFFICE
    )
    updated = after(order(), decide(update, order()))
    assert isinstance(updated, orders.Order)
    assert updated.details.items == (item("C", 1),)
    assert updated.details.shipping_address == OFFICE
    assert updated.details.billing_address == OFFICE
    assert updated.version == 3


def test_a_ready_order_takes_only_a_new_shipping_address() -> None:
    shipping = orders.UpdateOrder(shipping_address=OFFICE)
    updated = after(order("ready"), decide(shipping, order("ready")))
    assert isinstance(updated, orders.Order)
    assert updated.details.shipping_address == OFFICE
    assert updated.details.billing_address == HOME, "parts not given stay"

    everything = orders.UpdateOrder(
        items=(item(),), shipping_address=OFFICE, billing_address=OFFICE
    )
    assert problems(decide(everything, order("ready"))) == [
        (ErrorCode.NOT_EDITABLE, "payload.items"),
        (ErrorCode.NOT_EDITABLE, "payload.billing_address"),
    ]
    assert (
        "only while 'placed'; the order is 'ready'"
        in messages(decide(everything, order("ready")))[0]
    )


@pytest.mark.parametrize("status", ["fulfilled", "sent", "delivered", "cancelled"])
def test_later_orders_are_not_editable(status: str) -> None:
    decision = decide(orders.UpdateOrder(shipping_address=OFFICE), order(status))
    assert problems(decision) == [(ErrorCode.NOT_EDITABLE, "type")]
    assert f"'{status}'" in messages(decision)[0]


def test_an_empty_update_is_refused() -> None:
    assert problems(decide(orders.UpdateOrder(), order())) == [
        (ErrorCode.INVALID_REQUEST, "payload")
    ]


# Delete.


def test_a_placed_order_is_deleted_leaving_a_tombstone() -> None:
    gone = after(order(), decide(orders.DeleteOrder(), order()))
    assert gone == orders.DeletedOrder("t", "O-1", 3)


@pytest.mark.parametrize("status", ["ready", "fulfilled", "sent", "delivered", "cancelled"])
def test_after_placed_deletion_is_already_fulfilled_and_says_to_cancel(status: str) -> None:
    decision = decide(orders.DeleteOrder(), order(status))
    assert problems(decision) == [(ErrorCode.ALREADY_FULFILLED, "type")]
    assert f"is '{status}'" in messages(decision)[0]
    assert "cancel it instead" in messages(decision)[0]


def test_a_deleted_order_is_not_found_and_staff_learn_it_was_deleted() -> None:
    tombstone = orders.DeletedOrder("t", "O-1", 3)
    for command in (orders.DeleteOrder(actor=STAFF), orders.ChangeOrderStatus(orders.Status.READY)):
        decision = decide(command, tombstone)
        assert problems(decision) == [(ErrorCode.NOT_FOUND, "order_id")]
        assert "was deleted" in messages(decision)[0]


# Ownership: another customer's order looks exactly like a missing one.


@pytest.mark.parametrize(
    "command",
    [
        orders.UpdateOrder(shipping_address=OFFICE, actor=STRANGER),
        orders.ChangeOrderStatus(orders.Status.CANCELLED, actor=STRANGER),
        orders.DeleteOrder(actor=STRANGER),
        orders.DeleteOrder(actor=STRANGER, expected_version=99),
    ],
)
def test_a_foreign_customer_gets_exactly_the_missing_answer(command: orders.OrderCommand) -> None:
    foreign = decide(command, order())
    missing = decide(command, None)
    assert problems(foreign) == problems(missing) == [(ErrorCode.NOT_FOUND, "order_id")]
    assert messages(foreign) == messages(missing)
    assert messages(decide(command, orders.DeletedOrder("t", "O-1", 3))) == messages(missing)


def test_the_owner_and_staff_may_act() -> None:
    for actor in (CUSTOMER, STAFF, None):
        command = orders.ChangeOrderStatus(orders.Status.CANCELLED, actor=actor)
        assert isinstance(decide(command, order()), orders.Accepted)


def test_version_conflicts_name_the_current_version() -> None:
    decision = decide(orders.DeleteOrder(expected_version=1), order(version=2))
    assert problems(decision) == [(ErrorCode.VERSION_CONFLICT, "expected_version")]
    assert "current version is 2" in messages(decision)[0]


# Movements.


def moved(before: orders.State | None, target: str) -> set[Movement]:
    state = after(before, decide(orders.ChangeOrderStatus(orders.Status(target)), before))
    return set(movements(before, state))


def test_ready_reserves_every_item() -> None:
    assert moved(order("placed"), "ready") == {
        Movement("WH-1", "A", Bucket.RESERVED, 2),
        Movement("WH-1", "B", Bucket.RESERVED, 3),
    }


def test_cancelling_a_ready_order_releases_the_reservation() -> None:
    assert moved(order("ready"), "cancelled") == {
        Movement("WH-1", "A", Bucket.RESERVED, -2),
        Movement("WH-1", "B", Bucket.RESERVED, -3),
    }


def test_shipping_takes_stock_out_of_reserved_and_on_hand() -> None:
    assert moved(order("fulfilled"), "sent") == {
        Movement("WH-1", "A", Bucket.RESERVED, -2),
        Movement("WH-1", "A", Bucket.ON_HAND, -2),
        Movement("WH-1", "B", Bucket.RESERVED, -3),
        Movement("WH-1", "B", Bucket.ON_HAND, -3),
    }


@pytest.mark.parametrize(
    ("current", "target"), [("placed", "cancelled"), ("ready", "fulfilled"), ("sent", "delivered")]
)
def test_moves_that_change_no_stock_publish_nothing(current: str, target: str) -> None:
    assert moved(order(current), target) == set()


def test_deleting_or_editing_a_placed_order_moves_nothing() -> None:
    gone = after(order(), decide(orders.DeleteOrder(), order()))
    assert movements(order(), gone) == ()
    edit = orders.UpdateOrder(items=(item("Z", 9),))
    assert movements(order(), after(order(), decide(edit, order()))) == ()


# Redaction.

ALL_GROUPS = frozenset(orders.DataGroup)


@pytest.mark.parametrize("status", ["sent", "delivered", "cancelled"])
def test_an_order_out_of_fulfilment_is_redacted_at_once(status: str) -> None:
    decision = decide(orders.RedactOrder(ALL_GROUPS), order(status))
    assert isinstance(decision, orders.Accepted)
    assert decision.events == (orders.OrderRedacted(ALL_GROUPS),)
    redacted = after(order(status), decision)
    assert isinstance(redacted, orders.Order)
    assert (redacted.redacted, redacted.status, redacted.version) == (
        ALL_GROUPS,
        orders.Status(status),
        3,
    )


@pytest.mark.parametrize("status", ["placed", "ready", "fulfilled"])
def test_an_order_being_fulfilled_has_its_redaction_scheduled(status: str) -> None:
    shipping = frozenset({orders.DataGroup.SHIPPING_ADDRESS})
    decision = decide(orders.RedactOrder(shipping), order(status))
    assert isinstance(decision, orders.Accepted)
    assert decision.events == (orders.OrderRedactionScheduled(shipping),)
    scheduled = after(order(status), decision)
    assert isinstance(scheduled, orders.Order)
    assert (scheduled.redacted, scheduled.redaction_pending) == (frozenset(), shipping)


@pytest.mark.parametrize(("current", "target"), [("fulfilled", "sent"), ("placed", "cancelled")])
def test_the_scheduled_redaction_runs_with_the_move_out_of_fulfilment(
    current: str, target: str
) -> None:
    waiting = order(current, redaction_pending=ALL_GROUPS)
    decision = decide(orders.ChangeOrderStatus(orders.Status(target)), waiting)
    assert isinstance(decision, orders.Accepted)
    assert decision.events == (
        orders.OrderStatusChanged(orders.Status(current), orders.Status(target)),
        orders.OrderRedacted(ALL_GROUPS),
    )
    done = after(waiting, decision)
    assert isinstance(done, orders.Order)
    assert (done.redacted, done.redaction_pending, done.version) == (ALL_GROUPS, frozenset(), 4)


def test_moves_within_fulfilment_keep_the_redaction_waiting() -> None:
    waiting = order("placed", redaction_pending=ALL_GROUPS)
    decision = decide(orders.ChangeOrderStatus(orders.Status.READY), waiting)
    assert isinstance(decision, orders.Accepted)
    assert len(decision.events) == 1


def test_redacting_again_is_harmless_and_nobody_else_s_order_can_be_redacted() -> None:
    done = order("delivered", redacted=ALL_GROUPS)
    again = after(done, decide(orders.RedactOrder(ALL_GROUPS), done))
    assert isinstance(again, orders.Order)
    assert again.redacted == ALL_GROUPS
    stranger = orders.RedactOrder(ALL_GROUPS, actor=STRANGER)
    assert problems(decide(stranger, order("delivered"))) == [(ErrorCode.NOT_FOUND, "order_id")]


# Erasing a customer.


def test_a_customer_is_erased_across_their_orders_now_or_when_fulfilment_ends() -> None:
    shipped, placed = order("sent"), replace(order("placed"), order_id="O-2")
    erasure = orders.decide_customer_redaction(
        orders.RedactCustomer("CUST-1"), {"O-1": shipped, "O-2": placed}
    )
    assert isinstance(erasure, orders.CustomerErasure)
    assert [(o.order_id, events) for o, events in erasure.per_order] == [
        ("O-1", (orders.OrderRedacted(ALL_GROUPS),)),
        ("O-2", (orders.OrderRedactionScheduled(ALL_GROUPS),)),
    ]


def test_repeating_a_customer_erasure_changes_nothing() -> None:
    done = order("sent", redacted=ALL_GROUPS)
    waiting = replace(order("placed", redaction_pending=ALL_GROUPS), order_id="O-2")
    erasure = orders.decide_customer_redaction(
        orders.RedactCustomer("CUST-1"), {"O-1": done, "O-2": waiting}
    )
    assert erasure == orders.CustomerErasure(())


def test_listed_orders_must_be_the_customer_s_and_customers_erase_only_themselves() -> None:
    listed = orders.RedactCustomer("CUST-1", orders_to_redact=("O-1", "O-9"))
    assert problems(orders.decide_customer_redaction(listed, {"O-1": order("sent")})) == [
        (ErrorCode.NOT_FOUND, "payload.orders_to_redact.1")
    ]
    foreign = orders.RedactCustomer("CUST-1", actor=STRANGER)
    assert problems(orders.decide_customer_redaction(foreign, {})) == [
        (ErrorCode.NOT_FOUND, "customer_id")
    ]


def test_no_new_personal_data_is_stored_for_an_erased_customer() -> None:
    create = orders.CreateOrder(details())
    assert problems(orders.decide(create, None, "O-1", customer_erased=True)) == [
        (ErrorCode.SUBJECT_ERASED, "payload.customer_id")
    ]
    readdress = orders.UpdateOrder(shipping_address=OFFICE)
    assert problems(orders.decide(readdress, order(), "O-1", customer_erased=True)) == [
        (ErrorCode.SUBJECT_ERASED, "payload")
    ]
    items_only = orders.UpdateOrder(items=(item("C", 1),))
    assert isinstance(
        orders.decide(items_only, order(), "O-1", customer_erased=True), orders.Accepted
    )
