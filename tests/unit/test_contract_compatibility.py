"""The contract's compatibility policy, and the kit consumers pin it with."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from contract_tools import conformance
from contract_tools.conformance import (
    ContractViolation,
    assert_conforms,
    breaking_changes,
    problems,
)

from service.entrypoints.contract_files import render

RELEASED = Path(__file__).parents[2] / "contracts" / "released"


def generated() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(text)
        for path, text in render().items()
        if path.parent.name == "schemas"
    }


def released() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in RELEASED.glob("*.json")}


def test_the_generated_schemas_keep_every_promise_of_the_last_release() -> None:
    assert released(), "contracts/released holds the last release's schemas"
    assert breaking_changes(released(), generated()) == []


EVENT = "order.created"


def changed(edit: Any) -> list[str]:
    old = {EVENT: conformance.schema(EVENT)}
    new = copy.deepcopy(old)
    edit(new[EVENT])
    return breaking_changes(old, new)


def _defs(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["$defs"][name]
    return found


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s["properties"].pop("event_id"), "order.created: event_id: was removed"),
        (lambda s: s["required"].append("actor"), "order.created: actor: became required"),
        (
            lambda s: s["properties"]["version"].update(type="string"),
            "order.created: version: type changed from 'integer' to 'string'",
        ),
        (
            lambda s: _defs(s, "OrderSnapshot")["properties"].pop("total"),
            "order.created: data.total: was removed",
        ),
    ],
)
def test_breaking_changes_are_named(edit: Any, expected: str) -> None:
    assert expected in changed(edit)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].update(note={"type": "string"}),  # a new optional field
        lambda s: s["properties"]["version"].update(description="reworded"),
    ],
)
def test_what_a_minor_version_may_do_is_not_breaking(edit: Any) -> None:
    assert changed(edit) == []


def test_a_removed_message_type_is_breaking_and_a_new_one_is_not() -> None:
    schemas = generated()
    fewer = {k: v for k, v in schemas.items() if k != "order.deleted"}
    assert breaking_changes(schemas, fewer) == ["order.deleted: the message type was removed"]
    assert breaking_changes(fewer, schemas) == []


def test_the_kit_names_what_is_wrong_with_a_captured_message() -> None:
    movement = {
        "movement_id": "not-a-uuid",
        "tenant_id": "t",
        "warehouse_id": "WH-1",
        "sku": "SKU-1",
        "bucket": "somewhere",
        "quantity": 5,
        "reason": "order.status_changed",
        "source": {"type": "order", "id": "O-1", "version": 2, "event_id": "x"},
        "occurred_at": "2026-11-23T10:00:00Z",
    }
    found = problems(json.dumps(movement).encode(), topic="acme.inventory.movements")
    assert any(p.startswith("bucket:") for p in found)
    with pytest.raises(ContractViolation) as refused:
        assert_conforms({"type": "order.exploded"})
    assert refused.value.problems == ["type: no message of the contract is called 'order.exploded'"]
