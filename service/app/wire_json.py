"""Contract messages written from values the domain has already checked.

The contract models (contracts/) define every message. The kernel builds its outputs from domain
objects that were valid when they were read and that the domain's rules kept valid, so
validating them again as models checked what cannot have changed; building, validating and
writing those models was about a fifth of the service's CPU per command. Outputs are therefore
plain dicts, laid out in their model's field order, written by orjson, whose JSON for the types
contracts use is pydantic's byte for byte (Decimal, the one type orjson leaves to the caller, is
written as pydantic writes it: a string, exponent kept). tests/unit/test_wire_json.py reads
what this writes with the contract models, for every event, snapshot, state and movement the
property tests' command sequences produce, and compares it with what the models write.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any, get_args
from uuid import UUID

import orjson
from pydantic import BaseModel

Fields = dict[str, Any]

Written = orjson.Fragment
"""JSON already written, embedded as it is: a snapshot is written once per version, for its
history, its state and the events that carry it."""

_UTC_AS_Z = orjson.OPT_UTC_Z  # as pydantic writes UTC offsets


def _beyond_json(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        # orjson writes uuid.UUID itself, not its subclasses: asyncpg returns its own for every
        # uuid column, and the store makes ids of it (service/adapters/random_ids.py).
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a type any contract uses")


def wire_json(fields: Fields, *, indent: bool = False) -> bytes:
    """`fields` as the model whose layout they follow writes them (compact, unless `indent`
    for people)."""
    option = _UTC_AS_Z | orjson.OPT_INDENT_2 if indent else _UTC_AS_Z
    return orjson.dumps(fields, default=_beyond_json, option=option)


def in_field_order(model: type[BaseModel], fields: Fields) -> Fields:
    """`fields`, every one of `model`'s and no other, laid out as `model` declares them."""
    names, name_set = _field_names(model)
    if fields.keys() != name_set:
        raise ValueError(
            f"{model.__name__} has the fields {', '.join(names)}, not {', '.join(fields)}"
        )
    return {name: fields[name] for name in names}


@cache
def _field_names(model: type[BaseModel]) -> tuple[tuple[str, ...], frozenset[str]]:
    return tuple(model.model_fields), frozenset(model.model_fields)


@cache
def literal_type(model: type[BaseModel]) -> str:
    """The `type` a message model admits (its `Literal` discriminator)."""
    [value] = get_args(model.model_fields["type"].annotation)
    assert isinstance(value, str), f"{model.__name__}.type is not a string literal"
    return value
