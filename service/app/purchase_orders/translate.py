"""Conversions between the wire contract and the pure domain types: commands and stored
snapshots are read through the contract models; what is written is laid out as they are
(service/app/wire_json.py)."""

from __future__ import annotations

from contracts import purchase_orders as wire
from service.app.wire_json import Fields
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


def receipt_from_wire(receipt: wire.Receipt) -> po.Receipt:
    lines = tuple(po.ReceiptLine(line.sku, line.quantity) for line in receipt.lines)
    return po.Receipt(receipt.receipt_id, lines, receipt.received_at)


def receipt_to_wire(receipt: po.Receipt) -> Fields:
    """A receipt as wire.Receipt lays it out."""
    return {
        "receipt_id": receipt.receipt_id,
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in receipt.lines],
        "received_at": receipt.received_at,
    }


def invoice_from_wire(invoice: wire.Invoice) -> po.Invoice:
    return po.Invoice(
        invoice.invoice_id, invoice.amount, invoice.currency_code, invoice.invoiced_at
    )


def invoice_to_wire(invoice: po.Invoice) -> Fields:
    """An invoice as wire.Invoice lays it out."""
    return {
        "invoice_id": invoice.invoice_id,
        "amount": invoice.amount,
        "currency_code": invoice.currency_code,
        "invoiced_at": invoice.invoiced_at,
    }


_SHIPPING_FIELDS = tuple(wire.ShippingDetails.model_fields)
_DETAILS_FIELDS = tuple(wire.PurchaseOrderDetails.model_fields)


def shipping_details_to_wire(details: po.PurchaseOrderDetails) -> Fields:
    """The shipping details as wire.ShippingDetails lays them out."""
    return {name: getattr(details, name) for name in _SHIPPING_FIELDS}


def snapshot_to_wire(order: po.PurchaseOrder) -> Fields:
    """The order as wire.PurchaseOrderSnapshot lays it out (service/app/wire_json.py)."""
    d = order.details
    return {
        **{name: getattr(d, name) for name in _DETAILS_FIELDS},
        "products": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "supplier_sku": line.supplier_sku,
                "cost": line.cost,
            }
            for line in d.products
        ],
        "status": order.status.value,
        "receipts": [receipt_to_wire(r) for r in order.receipts],
        "invoices": [invoice_to_wire(i) for i in order.invoices],
    }


def order_from_snapshot(
    tenant_id: str, purchase_order_id: str, version: int, snapshot: wire.PurchaseOrderSnapshot
) -> po.PurchaseOrder:
    return po.PurchaseOrder(
        tenant_id,
        purchase_order_id,
        po.Status(snapshot.status),
        version,
        details_from_wire(snapshot),
        tuple(receipt_from_wire(r) for r in snapshot.receipts),
        tuple(invoice_from_wire(i) for i in snapshot.invoices),
    )


def command_from_wire(command: wire.PurchaseOrderCommandMessage) -> po.PurchaseOrderCommand:
    expected = command.expected_version
    match command:
        case wire.CreatePurchaseOrder(payload=payload):
            return po.CreatePurchaseOrder(details_from_wire(payload), expected)
        case wire.UpdatePurchaseOrder(payload=payload):
            return po.UpdatePurchaseOrder(details_from_wire(payload), expected)
        case wire.UpdatePurchaseOrderShippingDetails(payload=payload):
            # Only the fields the sender named are changes; the rest stay as they are.
            changes = tuple(
                (name, getattr(payload, name))
                for name in wire.ShippingDetails.model_fields
                if name in payload.model_fields_set
            )
            return po.UpdateShippingDetails(changes, expected)
        case wire.ChangePurchaseOrderStatus(payload=payload):
            return po.ChangePurchaseOrderStatus(po.Status(payload.status), payload.reason, expected)
        case wire.RecordPurchaseOrderReceipt(payload=payload):
            return po.RecordReceipt(receipt_from_wire(payload), expected)
        case wire.LinkPurchaseOrderInvoice(payload=payload):
            return po.LinkInvoice(invoice_from_wire(payload), expected)
        case wire.DeletePurchaseOrder():
            return po.DeletePurchaseOrder(expected)
    raise AssertionError(f"unhandled command {type(command).__name__}")  # pragma: no cover
