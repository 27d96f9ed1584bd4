"""Writes contracts/schemas/*.json and contracts/asyncapi.json from the pydantic models.

Run `make contracts` after changing a message; tests/unit/test_contracts.py fails while the
checked-in files differ from what this produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter

import contracts
from contracts import inventory, orders, previews, replies, state
from contracts import purchase_orders as po
from contracts.readers import policy_of

ROOT = Path(contracts.__file__).parent
"""The contracts package: the generated files are part of the contract and live beside its
models, though the code that writes them (which needs FastStream) lives here."""


def _by_type(union: Any) -> dict[str, type[BaseModel]]:
    """Each member of a discriminated union under its `type` literal, so no message is missed."""
    members: tuple[type[BaseModel], ...] = get_args(union)
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in members}


MESSAGES: dict[str, Any] = {
    **_by_type(po.PurchaseOrderCommandMessage),
    **_by_type(po.PurchaseOrderEventMessage),
    "purchase_order.rejection": po.PurchaseOrderRejection,
    **_by_type(orders.OrderCommandMessage),
    **_by_type(orders.OrderEventMessage),
    "order.rejection": orders.OrderRejection,
    "inventory.movement": inventory.InventoryMovement,
    "purchase_order.preview": previews.PurchaseOrderPreview,
    "order.preview": previews.OrderPreview,
    "purchase_order.state": state.PurchaseOrderState,
    "order.state": state.OrderState,
    "command.reply": replies.CommandReply,
}


def _schema(name: str, model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        schema = model.model_json_schema()
    else:
        schema = TypeAdapter(model).json_schema()
    # Each schema says how its readers read it and which way it may change (contracts.readers).
    policy = policy_of(name)
    if policy is None:
        raise ValueError(f"{name}: contracts.readers.kind_of does not know this kind of message")
    return schema | {"x-compatibility": policy.compatibility, "x-readers": policy.readers}


def render() -> dict[Path, str]:
    """Every generated file and its exact text."""
    files = {
        ROOT / "schemas" / f"{name}.json": _dump(_schema(name, model))
        for name, model in MESSAGES.items()
    }
    from service.entrypoints.asyncapi import specification

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
