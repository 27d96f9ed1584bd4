"""The families the service runs: the built-in ones, and any a deployment adds by import path.

Everything that needs the list of families (the runtime's consumers and deciders, the CLI's
routing of commands, metrics, dead letters) asks here, so a new family is one registration: a
factory that builds its `Family` for a topic prefix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from service.app.family import Family
from service.app.orders.family import order_family
from service.app.purchase_orders.family import purchase_order_family
from service.errors import ConfigurationError

FamilyFactory = Callable[[str], Family[Any]]
"""Builds a family's registration for a topic prefix."""

BUILT_IN: tuple[FamilyFactory, ...] = (purchase_order_family, order_family)


def families(prefix: str = "", extra: Sequence[str] = ()) -> tuple[Family[Any], ...]:
    """The built-in families and those named in `extra` ('package.module:factory'), checked to
    be told apart by name, topics and command types."""
    built = tuple(factory(prefix) for factory in (*BUILT_IN, *map(imported, extra)))
    _check_distinct(built)
    return built


def family_of(registered: Sequence[Family[Any]], command_type: str) -> Family[Any] | None:
    """The family that takes commands of this type."""
    return next(
        (f for f in registered if any(map(command_type.startswith, f.command_prefixes))), None
    )


def imported(path: str) -> FamilyFactory:
    """A family factory from 'package.module:factory'."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"EXTRA_FAMILIES: {path!r} is not 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(f"EXTRA_FAMILIES: cannot load {path!r}: {error}") from error
    if not callable(factory):
        raise ConfigurationError(f"EXTRA_FAMILIES: {path!r} is not callable")
    return factory  # type: ignore[no-any-return]  # an attribute found by name is untyped


def _check_distinct(registered: Sequence[Family[Any]]) -> None:
    seen: dict[str, str] = {}
    for family in registered:
        claims = [
            ("name", family.name),
            *(("topic", topic) for topic in family.topics.all()),
            *(("command prefix", prefix) for prefix in family.command_prefixes),
        ]
        for what, value in claims:
            owner = seen.setdefault(f"{what}:{value}", family.name)
            if owner != family.name:
                raise ConfigurationError(
                    f"families {owner!r} and {family.name!r} both claim the {what} {value!r}"
                )
