"""Writes contracts/schemas/*.json and contracts/asyncapi.json from the pydantic models.

Run `make contracts` after changing a message; tests/unit/test_contracts.py fails while the
checked-in files differ from what this produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from contracts import purchase_orders as po

ROOT = Path(__file__).parent

MESSAGES: dict[str, Any] = {
    "purchase_order.create": po.CreatePurchaseOrder,
    "purchase_order.change_status": po.ChangePurchaseOrderStatus,
    "purchase_order.created": po.PurchaseOrderCreated,
    "purchase_order.status_changed": po.PurchaseOrderStatusChanged,
    "purchase_order.rejection": po.PurchaseOrderRejection,
}


def _schema(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_json_schema()
    return TypeAdapter(model).json_schema()


def render() -> dict[Path, str]:
    """Every generated file and its exact text."""
    files = {
        ROOT / "schemas" / f"{name}.json": _dump(_schema(model)) for name, model in MESSAGES.items()
    }
    from contracts.asyncapi import specification

    files[ROOT / "asyncapi.json"] = _dump(specification())
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> None:
    (ROOT / "schemas").mkdir(exist_ok=True)
    for stale in (ROOT / "schemas").glob("*.json"):
        stale.unlink()
    for path, text in render().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()
