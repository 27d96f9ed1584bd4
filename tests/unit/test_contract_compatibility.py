"""The contract's compatibility policy: each kind of message changes in the direction its readers
need (commands backward, everything the service publishes forward), checked both ways."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from contract_tools import conformance
from contract_tools.compatibility import Break, breaking_changes, schema_changes
from contract_tools.conformance import Contract
from contracts.readers import POLICIES, Compatibility, MessageKind, Reading
from service.entrypoints.contract_files import render

RELEASED = Path(__file__).parents[2] / "contracts" / "released"
BACKWARD: Final = Compatibility.BACKWARD
FORWARD: Final = Compatibility.FORWARD

Schema = dict[str, Any]
Edit = Callable[[Schema], object]


def generated() -> dict[str, Schema]:
    return {
        path.stem: json.loads(text)
        for path, text in render().items()
        if path.parent.name == "schemas"
    }


def test_the_generated_schemas_keep_every_promise_of_the_last_release() -> None:
    released = Contract.from_directory(RELEASED)
    assert released.names, "contracts/released holds the last release's schemas"
    assert [str(found) for found in breaking_changes(released, generated())] == []


def test_every_generated_schema_says_how_it_is_read_and_may_change() -> None:
    for name, schema in generated().items():
        assert (schema["x-compatibility"], schema["x-readers"]) in {
            ("backward", "strict"),
            ("forward", "tolerant"),
        }, name
    assert generated()["purchase_order.create"]["x-compatibility"] == "backward"
    assert generated()["order.created"]["x-readers"] == "tolerant"


def test_the_direction_table_reads_commands_strictly_and_everything_else_tolerantly() -> None:
    assert POLICIES[MessageKind.COMMAND].compatibility is Compatibility.BACKWARD
    assert POLICIES[MessageKind.COMMAND].readers is Reading.STRICT
    published = set(MessageKind) - {MessageKind.COMMAND}
    assert {POLICIES[kind].compatibility for kind in published} == {Compatibility.FORWARD}
    assert {POLICIES[kind].readers for kind in published} == {Reading.TOLERANT}


# --- One schema, changed in one way, judged in both directions -------------------------------

EVENT = "purchase_order.created"


def defs(schema: Schema, name: str) -> Schema:
    found: Schema = schema["$defs"][name]
    return found


def field(schema: Schema, model: str, name: str) -> Schema:
    found: Schema = defs(schema, model)["properties"][name]
    return found


def top(schema: Schema, name: str) -> Schema:
    found: Schema = schema["properties"][name]
    return found


def cost_options(schema: Schema) -> list[Schema]:
    options: list[Schema] = field(schema, "ProductLine", "cost")["anyOf"]
    return options


def nothing(schema: Schema) -> None:
    """The schema as generated."""


def open_product_lines(schema: Schema) -> None:
    defs(schema, "ProductLine").pop("additionalProperties")


def close_product_lines(schema: Schema) -> None:
    defs(schema, "ProductLine")["additionalProperties"] = False


Verdict = tuple[bool, bool]
"""(breaks backward compatibility?, breaks forward compatibility?)"""

NEITHER: Verdict = (False, False)
BACKWARD_ONLY: Verdict = (True, False)
FORWARD_ONLY: Verdict = (False, True)
BOTH: Verdict = (True, True)


@dataclass(frozen=True)
class Case:
    change: str
    edit: Edit
    verdict: Verdict
    before: Edit = nothing
    """Applied to both versions first: the starting point, when it is not the shipped schema."""

    def __str__(self) -> str:
        return self.change


def add_field(schema: Schema, *, required: bool) -> None:
    schema["properties"]["note"] = {"type": "string"}
    if required:
        schema["required"].append("note")


def remove_field(schema: Schema, name: str) -> None:
    schema["properties"].pop(name)
    if name in schema["required"]:
        schema["required"].remove(name)


def nullable(schema: Schema, name: str) -> None:
    schema["properties"][name] = {"anyOf": [top(schema, name), {"type": "null"}]}


def rename_definition(schema: Schema) -> None:
    schema["$defs"]["Delivery"] = schema["$defs"].pop("Receipt")
    field(schema, "PurchaseOrderSnapshot", "receipts")["items"] = {"$ref": "#/$defs/Delivery"}


def narrower_definition(schema: Schema) -> None:
    schema["$defs"]["Line"] = {
        **defs(schema, "ProductLine"),
        "required": ["sku", "quantity", "cost"],
    }
    field(schema, "PurchaseOrderSnapshot", "products")["items"] = {"$ref": "#/$defs/Line"}


def quantity(schema: Schema) -> Schema:
    return field(schema, "ProductLine", "quantity")


def products(schema: Schema) -> Schema:
    return field(schema, "PurchaseOrderSnapshot", "products")


def status_values(schema: Schema) -> list[str]:
    values: list[str] = defs(schema, "PurchaseOrderStatus")["enum"]
    return values


def cents(schema: Schema) -> None:
    cost_options(schema)[0]["multipleOf"] = 0.01


CASES = [
    Case("a new optional field", lambda s: add_field(s, required=False), NEITHER),
    Case("a new required field", lambda s: add_field(s, required=True), BACKWARD_ONLY),
    Case(
        "an optional field becomes required", lambda s: s["required"].append("actor"), BACKWARD_ONLY
    ),
    Case(
        "a required field becomes optional", lambda s: s["required"].remove("version"), FORWARD_ONLY
    ),
    Case("an optional field is removed", lambda s: remove_field(s, "actor"), BACKWARD_ONLY),
    Case("a required field is removed", lambda s: remove_field(s, "version"), BOTH),
    Case("a new enum value", lambda s: status_values(s).append("on_hold"), NEITHER),
    Case("an enum value is removed", lambda s: status_values(s).remove("closed"), BACKWARD_ONLY),
    Case("a const changes", lambda s: top(s, "type").update(const="po.opened"), BACKWARD_ONLY),
    Case(
        "integer widens to number", lambda s: top(s, "version").update(type="number"), FORWARD_ONLY
    ),
    Case(
        "number narrows to integer",
        lambda s: cost_options(s)[0].update(type="integer"),
        BACKWARD_ONLY,
    ),
    Case("string becomes integer", lambda s: top(s, "tenant_id").update(type="integer"), BOTH),
    Case("a field becomes nullable", lambda s: nullable(s, "version"), FORWARD_ONLY),
    Case(
        "a format is added",
        lambda s: top(s, "purchase_order_id").update(format="uuid"),
        BACKWARD_ONLY,
    ),
    Case("a format is removed", lambda s: top(s, "event_id").pop("format"), FORWARD_ONLY),
    Case("a format changes", lambda s: top(s, "occurred_at").update(format="date"), BOTH),
    Case("a minimum rises", lambda s: top(s, "version").update(minimum=2), BACKWARD_ONLY),
    Case("a minimum falls", lambda s: top(s, "version").update(minimum=0), FORWARD_ONLY),
    Case(
        "a minimum becomes exclusive",
        lambda s: top(s, "version").update(exclusiveMinimum=top(s, "version").pop("minimum")),
        BACKWARD_ONLY,
    ),
    Case("a maximum rises", lambda s: quantity(s).update(maximum=10**8), FORWARD_ONLY),
    Case("a maximum falls", lambda s: quantity(s).update(maximum=10), BACKWARD_ONLY),
    Case(
        "an exclusiveMaximum below the maximum",
        lambda s: quantity(s).update(exclusiveMaximum=100),
        BACKWARD_ONLY,
    ),
    Case("a multipleOf is added", cents, BACKWARD_ONLY),
    Case(
        "a multipleOf is removed",
        lambda s: cost_options(s)[0].pop("multipleOf"),
        FORWARD_ONLY,
        before=cents,
    ),
    Case(
        "a multipleOf is halved",
        lambda s: cost_options(s)[0].update(multipleOf=0.005),
        FORWARD_ONLY,
        before=cents,
    ),
    Case("a maxLength rises", lambda s: top(s, "tenant_id").update(maxLength=128), FORWARD_ONLY),
    Case("a maxLength falls", lambda s: top(s, "tenant_id").update(maxLength=32), BACKWARD_ONLY),
    Case("a minLength rises", lambda s: top(s, "tenant_id").update(minLength=2), BACKWARD_ONLY),
    Case(
        "a pattern is added",
        lambda s: top(s, "event_id").update(pattern="^[0-9a-f-]+$"),
        BACKWARD_ONLY,
    ),
    Case("a pattern is removed", lambda s: top(s, "tenant_id").pop("pattern"), FORWARD_ONLY),
    Case("a pattern changes", lambda s: top(s, "tenant_id").update(pattern="^[a-z]+$"), BOTH),
    Case("a minItems rises", lambda s: products(s).update(minItems=2), BACKWARD_ONLY),
    Case("a maxItems rises", lambda s: products(s).update(maxItems=1000), FORWARD_ONLY),
    Case("uniqueItems is added", lambda s: products(s).update(uniqueItems=True), BACKWARD_ONLY),
    Case("the items change type", lambda s: products(s).update(items={"type": "string"}), BOTH),
    Case("unknown fields become allowed", open_product_lines, NEITHER),
    Case(
        "unknown fields become refused",
        close_product_lines,
        BACKWARD_ONLY,
        before=open_product_lines,
    ),
    Case("an anyOf option is removed", lambda s: cost_options(s).pop(1), BACKWARD_ONLY),
    Case(
        "an anyOf option is added",
        lambda s: cost_options(s).append({"type": "boolean"}),
        FORWARD_ONLY,
    ),
    Case("a $ref to a renamed definition, same content", rename_definition, NEITHER),
    Case("a $ref to a narrower definition", narrower_definition, BACKWARD_ONLY),
    Case(
        "wording and defaults change",
        lambda s: top(s, "version").update(description="reworded", title="V", default=1),
        NEITHER,
    ),
    Case("an x- annotation changes", lambda s: s.update({"x-owner": "team"}), NEITHER),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_change_breaks_the_directions_it_should(case: Case) -> None:
    old = conformance.schema(EVENT)
    case.before(old)
    new = copy.deepcopy(old)
    case.edit(new)
    found = schema_changes(old, new, Compatibility.FULL, message=EVENT)
    directions = {finding.direction for finding in found}
    verdict = (BACKWARD in directions, FORWARD in directions)
    assert verdict == case.verdict, [str(finding) for finding in found]


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].update(note={"type": "string"}),
        lambda s: defs(s, "PurchaseOrderStatus")["enum"].append("on_hold"),
    ],
    ids=["a new field", "a new enum value"],
)
def test_what_tolerant_readers_let_pass_breaks_strict_ones(edit: Edit) -> None:
    old = conformance.schema(EVENT)
    new = copy.deepcopy(old)
    edit(new)
    assert schema_changes(old, new, Compatibility.FORWARD, readers=Reading.TOLERANT) == []
    strict = schema_changes(old, new, Compatibility.FORWARD, readers=Reading.STRICT)
    assert {finding.direction for finding in strict} == {FORWARD}


# --- Whole contracts: each message in its own direction ---------------------------------------


def changed(name: str, edit: Edit) -> list[Break]:
    old = generated()
    new = copy.deepcopy(old)
    edit(new[name])
    return breaking_changes(old, new)


def test_a_command_that_accepts_less_breaks_and_one_that_accepts_more_does_not() -> None:
    assert changed("purchase_order.create", lambda s: quantity(s).update(maximum=10)) == [
        Break(
            message="purchase_order.create",
            path="payload.products[].quantity",
            keyword="maximum",
            direction=BACKWARD,
            detail="was maximum 10000000, now maximum 10",
        )
    ]
    assert changed("purchase_order.create", lambda s: quantity(s).update(maximum=10**8)) == []


def test_an_event_that_may_carry_more_breaks_and_one_that_carries_less_does_not() -> None:
    [found] = changed("order.status_changed", lambda s: top(s, "version").update(minimum=0))
    assert (found.message, found.path, found.keyword, found.direction) == (
        "order.status_changed",
        "version",
        "minimum",
        FORWARD,
    )
    assert changed("order.status_changed", lambda s: top(s, "version").update(minimum=5)) == []


def test_a_message_may_ask_for_both_directions() -> None:
    def full_and_narrower(schema: Schema) -> None:
        schema["x-compatibility"] = "full"
        top(schema, "version").update(minimum=5)

    [found] = changed("order.status_changed", full_and_narrower)
    assert (found.keyword, found.direction) == ("minimum", BACKWARD)


def test_removing_a_command_type_breaks_and_new_message_types_do_not() -> None:
    schemas = generated()
    fewer = {k: v for k, v in schemas.items() if k != "order.redact"}
    assert [str(found) for found in breaking_changes(schemas, fewer)] == [
        "order.redact: (message): message type: removed: messages of this type are no longer"
        " read (backward)"
    ]
    assert breaking_changes(fewer, schemas) == []


def test_an_event_type_no_longer_published_breaks_its_consumers() -> None:
    # Old readers still parse everything published; whoever acts on order.deleted would
    # silently never hear of a deletion again.
    schemas = generated()
    fewer = {k: v for k, v in schemas.items() if k != "order.deleted"}
    assert [str(found) for found in breaking_changes(schemas, fewer)] == [
        "order.deleted: (message): message type: removed: messages of this type are no longer"
        " published (forward)"
    ]


def test_a_recursive_schema_is_compared_without_looping() -> None:
    node: Schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "n": {"type": "integer"},
                },
            }
        },
        "$ref": "#/$defs/Node",
    }
    bounded = copy.deepcopy(node)
    bounded["$defs"]["Node"]["properties"]["n"]["maximum"] = 3
    [found] = schema_changes(node, bounded)
    assert (found.path, found.keyword, found.direction) == ("n", "maximum", BACKWARD)
