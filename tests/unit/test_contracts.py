"""contracts/ is the single source of truth: generated files are fresh, domain enums agree."""

from __future__ import annotations

import typing

from contracts import common, orders, purchase_orders
from service.domain import orders as order_domain
from service.domain import problems
from service.domain import purchase_orders as domain
from service.entrypoints.contract_files import MESSAGES, ROOT, render


def test_generated_schemas_and_asyncapi_are_up_to_date() -> None:
    stale = [
        str(path.name)
        for path, text in render().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `make contracts`: stale {stale}"


def test_every_message_has_a_schema_and_no_schema_is_left_over() -> None:
    rendered = set(render())
    on_disk = set((ROOT / "schemas").glob("*.json"))
    assert on_disk <= rendered, f"run `make contracts`: leftovers {on_disk - rendered}"
    assert {p.stem for p in on_disk} >= set(MESSAGES)


def test_domain_statuses_match_the_wire() -> None:
    assert [s.value for s in domain.Status] == [
        s.value for s in purchase_orders.PurchaseOrderStatus
    ]


def test_domain_error_codes_and_types_match_the_wire() -> None:
    assert {c.value for c in problems.ErrorCode} == set(typing.get_args(common.ErrorCode))
    assert {t.value for t in problems.ErrorType} == set(typing.get_args(common.ErrorType))


def test_order_statuses_and_cancel_reasons_match_the_wire() -> None:
    assert [s.value for s in order_domain.Status] == [s.value for s in orders.OrderStatus]
    assert [r.value for r in order_domain.CancelReason] == [r.value for r in orders.CancelReason]
    parts = typing.get_args(
        typing.get_args(orders.OrderUpdateData.model_fields["changed"].annotation)[0]
    )
    assert [p.value for p in order_domain.Part] == list(parts)
