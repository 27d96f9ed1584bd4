"""The families the service runs: the built-in ones, and any a deployment adds by import path.

Everything that needs the list of families (the runtime's consumers and deciders, the CLI's
routing of commands, metrics, dead letters) asks here, so a new family is one registration: a
factory that builds its `Family` for a topic prefix.

EXTRA_FAMILIES names code to import and run in every process of the service, with all the
access the service has: setting it is deploying code, and it is read from the environment
only, never from a message.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from contracts.topics import INVENTORY_MOVEMENTS
from service.app.family import Family
from service.app.orders.family import order_family
from service.app.purchase_orders.family import purchase_order_family
from service.errors import ConfigurationError

FamilyFactory = Callable[[str], Family[Any]]
"""Builds a family's registration for a topic prefix."""

BUILT_IN_FAMILIES: tuple[FamilyFactory, ...] = (purchase_order_family, order_family)

FAMILY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
"""A family's name becomes its topics' stem, its documents' kind, its consumer group and a
metric label: short, lower case, no separators that any of those would read otherwise. Its
documents are stored under it, so renaming a family is a data migration."""


SCOPE = re.compile(r"^[a-z][a-z0-9_.-]*:[a-z][a-z0-9_.-]*$")
"""A token scope, 'resource:action'."""


def families(prefix: str = "", extra: Sequence[str] = ()) -> tuple[Family[Any], ...]:
    """The built-in families and those named in `extra` ('package.module:factory'), checked to
    be told apart by name, topics, command types and scopes, and to guard every command type
    they take."""
    built = tuple(factory(prefix) for factory in BUILT_IN_FAMILIES) + tuple(
        _build(path, prefix) for path in extra
    )
    for family in built:
        _check(family)
    _check_distinct(built)
    shared = f"{prefix}{INVENTORY_MOVEMENTS}"
    for family in built:
        if shared in family.topics.all():
            raise ConfigurationError(f"family {family.name!r} claims the topic {shared!r}")
    return built


def family_of(registered: Sequence[Family[Any]], command_type: str) -> Family[Any] | None:
    """The family that takes commands of this type."""
    return next(
        (f for f in registered if any(map(command_type.startswith, f.command_prefixes))), None
    )


def command_types(family: Family[Any]) -> frozenset[str]:
    """Every command type the family's wire union accepts, told apart by its `type` field: the
    field the gate reads to decide which scope and which role rows apply. A union told apart
    by any other field could be decided as one type while the gate judged another."""
    try:
        schema = family.commands.adapter.json_schema()
    except Exception as error:
        raise ConfigurationError(
            f"family {family.name!r}: its command union has no JSON schema: {error}"
        ) from error
    discriminator = schema.get("discriminator", {})
    if discriminator.get("propertyName") != "type":
        raise ConfigurationError(
            f"family {family.name!r}: its command union must be discriminated by 'type'"
        )
    return frozenset(discriminator.get("mapping", {}))


def _build(path: str, prefix: str) -> Family[Any]:
    """A family from 'package.module:factory'; any failure is a ConfigurationError naming it."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"EXTRA_FAMILIES: {path!r} is not 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
        family = factory(prefix)
    except Exception as error:
        raise ConfigurationError(
            f"EXTRA_FAMILIES: {path!r} could not be loaded: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(family, Family):
        raise ConfigurationError(
            f"EXTRA_FAMILIES: {path!r} returned {type(family).__name__}, not a Family"
        )
    return family


def _check(family: Family[Any]) -> None:
    if not FAMILY_NAME.fullmatch(family.name):
        raise ConfigurationError(f"family name {family.name!r} must match {FAMILY_NAME.pattern}")
    types = command_types(family)
    authority = family.commands.authority
    unguarded = sorted(types - set(authority.scopes))
    if unguarded:
        raise ConfigurationError(
            f"family {family.name!r} names no scope for {', '.join(unguarded)}: every command"
            " type needs one"
        )
    ungranted = sorted(
        t for t in types if not any(t in rows for rows in authority.permissions.values())
    )
    if ungranted:
        raise ConfigurationError(
            f"family {family.name!r}: no role may send {', '.join(ungranted)}; leave such types"
            " out of the union"
        )
    strays = sorted((set(authority.scopes) | authority.destructive) - types)
    if strays:
        raise ConfigurationError(
            f"family {family.name!r}: its authority names {', '.join(strays)}, which its"
            " command union does not take (a misspelt type guards nothing)"
        )
    malformed = sorted(v for v in authority.scopes.values() if not SCOPE.fullmatch(v))
    if malformed:
        raise ConfigurationError(
            f"family {family.name!r}: scopes {malformed} must match {SCOPE.pattern}"
        )
    topics = family.topics.all()
    if len(set(topics)) != len(topics):
        raise ConfigurationError(f"family {family.name!r}: its topics must be distinct")
    unrouted = sorted(t for t in types if not any(map(t.startswith, family.command_prefixes)))
    if unrouted:
        raise ConfigurationError(
            f"family {family.name!r}: {', '.join(unrouted)} start with none of its command prefixes"
        )


def _check_distinct(registered: Sequence[Family[Any]]) -> None:
    seen: dict[str, int] = {}
    prefixes: list[tuple[int, str]] = []
    for position, family in enumerate(registered):
        claims = [
            ("name", family.name),
            *(("topic", topic) for topic in family.topics.all()),
            # A token names scopes, not families: a scope two families shared would let a
            # token minted for one send the other's commands.
            *(("scope", scope) for scope in set(family.commands.authority.scopes.values())),
        ]
        for what, value in claims:
            owner = seen.setdefault(f"{what}:{value}", position)
            if owner != position:
                raise ConfigurationError(
                    f"families {registered[owner].name!r} and {family.name!r} both claim the"
                    f" {what} {value!r}"
                )
        for prefix in family.command_prefixes:
            for owner, other in prefixes:
                if owner != position and (prefix.startswith(other) or other.startswith(prefix)):
                    raise ConfigurationError(
                        f"the command prefixes {other!r} of {registered[owner].name!r} and"
                        f" {prefix!r} of {family.name!r} overlap"
                    )
            prefixes.append((position, prefix))
