"""Conversions between the customer-order wire contract and the pure domain types: commands
are read through the contract models; what is written is laid out as they are
(service/app/wire_json.py)."""

from __future__ import annotations

from contracts import orders as wire
from service.app.wire_json import Fields
from service.domain import orders


def address_from_wire(address: wire.Address) -> orders.Address:
    return orders.Address(
        name=address.name,
        lines=tuple(address.lines),
        city=address.city,
        postal_code=address.postal_code,
        country=str(address.country),
        phone=address.phone,
        email=str(address.email) if address.email is not None else None,
    )


def items_from_wire(items: list[wire.OrderItem]) -> tuple[orders.Item, ...]:
    return tuple(orders.Item(i.sku, i.quantity, i.unit_price, str(i.currency)) for i in items)


def details_from_wire(details: wire.OrderDetails) -> orders.OrderDetails:
    return orders.OrderDetails(
        customer_id=details.customer_id,
        warehouse_id=details.warehouse_id,
        items=items_from_wire(details.items),
        shipping_address=address_from_wire(details.shipping_address),
        billing_address=address_from_wire(details.billing_address),
        voucher_code=details.voucher_code,
    )


def command_from_wire(command: wire.OrderCommandMessage) -> orders.CommandForOrders:
    expected = command.expected_version
    actor = orders.Actor(command.actor.type, command.actor.id) if command.actor else None
    match command:
        case wire.CreateOrder(payload=payload):
            return orders.CreateOrder(details_from_wire(payload), expected, actor)
        case wire.UpdateOrder(payload=payload):
            return orders.UpdateOrder(
                items=items_from_wire(payload.items) if payload.items is not None else None,
                shipping_address=address_from_wire(payload.shipping_address)
                if payload.shipping_address is not None
                else None,
                billing_address=address_from_wire(payload.billing_address)
                if payload.billing_address is not None
                else None,
                expected_version=expected,
                actor=actor,
            )
        case wire.ChangeOrderStatus(payload=payload):
            reason = orders.CancelReason(payload.reason) if payload.reason else None
            return orders.ChangeOrderStatus(orders.Status(payload.status), reason, expected, actor)
        case wire.DeleteOrder():
            return orders.DeleteOrder(expected, actor)
        case wire.RedactCustomer(payload=payload):
            listed = payload.orders_to_redact
            return orders.RedactCustomer(
                command.customer_id, tuple(listed) if listed else None, expected, actor
            )
        case wire.RedactOrder(payload=payload):
            groups = frozenset(orders.DataGroup(g.value) for g in payload.groups)
            return orders.RedactOrder(groups, expected, actor)
    raise AssertionError(f"unhandled command {type(command).__name__}")  # pragma: no cover


def snapshot_to_wire(order: orders.Order) -> Fields:
    """The order without personal data, as wire.OrderSnapshot lays it out: what events and
    history carry (service/app/wire_json.py)."""
    d = order.details
    return {
        "customer_id": d.customer_id,
        "warehouse_id": d.warehouse_id,
        "status": order.status.value,
        "items": [
            {
                "sku": i.sku,
                "quantity": i.quantity,
                "unit_price": i.unit_price,
                "currency": i.currency,
            }
            for i in d.items
        ],
        "total": order.total(),
        "currency": d.items[0].currency,
        "voucher_code": d.voucher_code,
    }


def groups_to_wire(groups: frozenset[orders.DataGroup]) -> Fields:
    """wire.RedactionData."""
    return {"groups": [g.value for g in sorted(groups)]}
