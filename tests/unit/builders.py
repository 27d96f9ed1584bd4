"""Domain objects for the unit tests of the pure purchase-order code."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from service.domain import purchase_orders as po


def details(**overrides: object) -> po.PurchaseOrderDetails:
    fields: dict[str, object] = {
        "supplier_id": "SUP-1",
        "warehouse_id": "WH-1",
        "products": (po.ProductLine("A", 10), po.ProductLine("B", 4)),
    }
    fields.update(overrides)
    return po.PurchaseOrderDetails(**fields)  # type: ignore[arg-type]


def order(status: str = "draft", version: int = 3, **overrides: object) -> po.PurchaseOrder:
    base = po.PurchaseOrder("t", "PO-1", po.Status(status), version, details())
    return replace(base, **overrides)  # type: ignore[arg-type]


def receipt(receipt_id: str = "R-1", **lines: int) -> po.Receipt:
    return po.Receipt(receipt_id, tuple(po.ReceiptLine(sku, q) for sku, q in lines.items()))


def invoice(invoice_id: str = "INV-1") -> po.Invoice:
    return po.Invoice(invoice_id, Decimal("99.50"), "USD")
