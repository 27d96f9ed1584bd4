"""Conversions between the wire contract (pydantic) and the pure domain types."""

from __future__ import annotations

from contracts import purchase_orders as wire
from service.domain import purchase_orders as po


def details_from_wire(details: wire.PurchaseOrderDetails) -> po.PurchaseOrderDetails:
    return po.PurchaseOrderDetails(
        supplier_id=details.supplier_id,
        warehouse_id=details.warehouse_id,
        products=tuple(
            po.ProductLine(line.sku, line.quantity, line.supplier_sku, line.cost)
            for line in details.products
        ),
        order_date=details.order_date,
        expected_delivery_date=details.expected_delivery_date,
        payment_terms=details.payment_terms,
        payment_status=details.payment_status,
        currency_code=details.currency_code,
        shipping_carrier=details.shipping_carrier,
        tracking_number=details.tracking_number,
        reference_number=details.reference_number,
        note_to_supplier=details.note_to_supplier,
    )


def snapshot_to_wire(order: po.PurchaseOrder) -> wire.PurchaseOrderSnapshot:
    d = order.details
    return wire.PurchaseOrderSnapshot.model_validate(
        {
            "status": order.status.value,
            "supplier_id": d.supplier_id,
            "warehouse_id": d.warehouse_id,
            "products": [
                {
                    "sku": p.sku,
                    "quantity": p.quantity,
                    "supplier_sku": p.supplier_sku,
                    "cost": p.cost,
                }
                for p in d.products
            ],
            "order_date": d.order_date,
            "expected_delivery_date": d.expected_delivery_date,
            "payment_terms": d.payment_terms,
            "payment_status": d.payment_status,
            "currency_code": d.currency_code,
            "shipping_carrier": d.shipping_carrier,
            "tracking_number": d.tracking_number,
            "reference_number": d.reference_number,
            "note_to_supplier": d.note_to_supplier,
        }
    )


def order_from_snapshot(
    tenant_id: str, purchase_order_id: str, version: int, snapshot: wire.PurchaseOrderSnapshot
) -> po.PurchaseOrder:
    details = details_from_wire(snapshot)
    return po.PurchaseOrder(
        tenant_id, purchase_order_id, po.Status(snapshot.status), version, details
    )


def command_from_wire(
    command: wire.CreatePurchaseOrder | wire.ChangePurchaseOrderStatus,
) -> po.PurchaseOrderCommand:
    match command:
        case wire.CreatePurchaseOrder(payload=payload, expected_version=expected):
            return po.CreatePurchaseOrder(details_from_wire(payload), expected)
        case wire.ChangePurchaseOrderStatus(payload=payload, expected_version=expected):
            return po.ChangePurchaseOrderStatus(po.Status(payload.status), payload.reason, expected)
    raise AssertionError(f"unhandled command {type(command).__name__}")  # pragma: no cover
