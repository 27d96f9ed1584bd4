"""Compatibility between two versions of the contract: `breaking_changes(released, current)`
compares them by message name, each in the direction its kind needs (`x-compatibility`):
commands backward (the new schema accepts every message the old one did: an upgraded service
reads old producers' commands), everything the service publishes forward (an old tolerant reader
accepts every message the new schema allows: new optional fields, enum values and message types
are fine; widening a type, a bound, a length, a pattern or a format, or no longer sending a field
old readers require, is not). Removing a message type breaks either way.

    from contract_tools.compatibility import breaking_changes
    breaking_changes(Contract.from_directory("contracts/released"), Contract.shipped())
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from contract_tools.conformance import Contract
from contract_tools.schema_refs import Schema, resolve
from contracts.readers import Compatibility, Reading


@dataclass(frozen=True)
class Break:
    """A change that breaks a promise: `direction` says which (backward: old messages are
    refused now; forward: old readers refuse new messages)."""

    message: str
    path: str
    keyword: str
    direction: Literal[Compatibility.BACKWARD, Compatibility.FORWARD]
    detail: str

    def __str__(self) -> str:
        return f"{self.message}: {self.path}: {self.keyword}: {self.detail} ({self.direction})"


def breaking_changes(
    released: Contract | Mapping[str, Mapping[str, Any]],
    current: Contract | Mapping[str, Mapping[str, Any]],
) -> list[Break]:
    """Every change from `released` to `current` that breaks a message's compatibility, in the
    direction its policy (`x-compatibility`, else its kind's) asks for."""
    old, new = _as_contract(released), _as_contract(current)
    found: list[Break] = []
    for name in old.names:
        policy = new.policy(name) if name in new else old.policy(name)
        if name in new:
            found += schema_changes(
                old.schema(name),
                new.schema(name),
                policy.compatibility,
                readers=policy.readers,
                message=name,
            )
        elif Compatibility.BACKWARD in _directions(policy.compatibility):
            detail = "removed: messages of this type are no longer read"
            found.append(Break(name, "(message)", "message type", Compatibility.BACKWARD, detail))
        else:
            # Old readers still parse everything published, but whoever acts on this type
            # would silently never see it again: a removal is for a major version.
            detail = "removed: messages of this type are no longer published"
            found.append(Break(name, "(message)", "message type", Compatibility.FORWARD, detail))
    return found


def schema_changes(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    direction: Compatibility = Compatibility.FULL,
    *,
    readers: Reading = Reading.TOLERANT,
    message: str = "message",
) -> list[Break]:
    """What breaks `direction` between two versions of one message's schema. With tolerant
    readers, new fields and new enum or const values do not break forward compatibility."""
    wanted = _directions(direction)
    old_root, new_root = dict(old), dict(new)
    diff = _Diff(old_root, new_root, tolerant=readers is Reading.TOLERANT)
    found: list[Break] = []
    for change in diff.compare(old_root, new_root, ""):
        finding = Break(
            message, change.path or "(message)", change.keyword, change.direction, change.detail
        )
        if change.direction in wanted and finding not in found:
            found.append(finding)
    return found


def _as_contract(schemas: Contract | Mapping[str, Mapping[str, Any]]) -> Contract:
    return schemas if isinstance(schemas, Contract) else Contract(schemas)


def _directions(compatibility: Compatibility) -> frozenset[Compatibility]:
    if compatibility is Compatibility.FULL:
        return frozenset({Compatibility.BACKWARD, Compatibility.FORWARD})
    return frozenset({compatibility})


_BACKWARD: Literal[Compatibility.BACKWARD] = Compatibility.BACKWARD
_FORWARD: Literal[Compatibility.FORWARD] = Compatibility.FORWARD

_LOWER_BOUNDS = (("minimum", "exclusiveMinimum"), ("minLength",), ("minItems",), ("minProperties",))
_UPPER_BOUNDS = (("maximum", "exclusiveMaximum"), ("maxLength",), ("maxItems",), ("maxProperties",))
_HANDLED = frozenset(
    {
        "$ref",
        "additionalProperties",
        "allOf",
        "anyOf",
        "const",
        "enum",
        "format",
        "items",
        "multipleOf",
        "oneOf",
        "pattern",
        "properties",
        "required",
        "type",
        "uniqueItems",
        *(keyword for bounds in (*_LOWER_BOUNDS, *_UPPER_BOUNDS) for keyword in bounds),
    }
)


@dataclass(frozen=True)
class _Change:
    path: str
    keyword: str
    direction: Literal[Compatibility.BACKWARD, Compatibility.FORWARD]
    detail: str


@dataclass(frozen=True)
class _Bound:
    value: float
    exclusive: bool
    keyword: str

    def __str__(self) -> str:
        return f"{self.keyword} {self.value}"


class _Diff:
    """Compares two schemas node by node. A narrowing (the new schema refuses something the old
    one accepted) breaks backward compatibility; a widening (it accepts something the old one
    refused) breaks forward compatibility, unless tolerant readers let it pass."""

    def __init__(self, old_root: Schema, new_root: Schema, *, tolerant: bool) -> None:
        self._old_root = old_root
        self._new_root = new_root
        self._tolerant = tolerant
        self._open: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        refs = (old.get("$ref"), new.get("$ref"))
        pair = (refs[0], refs[1]) if isinstance(refs[0], str) and isinstance(refs[1], str) else None
        if pair in self._open:
            return []  # a recursive model: this pair is being compared further up
        if pair is not None:
            self._open.add(pair)
        try:
            old, new = resolve(old, self._old_root), resolve(new, self._new_root)
            if any(k in node for node in (old, new) for k in ("anyOf", "oneOf")):
                return self._compare_options(old, new, path)
            return self._compare_one(old, new, path)
        finally:
            if pair is not None:
                self._open.discard(pair)

    def _compare_options(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        """Each old option must be covered by a new one (backward) and each new option by an
        old one (forward); where one is not, the changes against its counterpart of the same
        type are named, else the option itself."""
        olds, news = _options(old), _options(new)
        pairs = [[self.compare(a, b, path) for b in news] for a in olds]
        keyword = "anyOf" if "anyOf" in old or "anyOf" in new else "oneOf"
        found: list[_Change] = []
        for i, option in enumerate(olds):
            if not any(not _toward(pairs[i][j], _BACKWARD) for j in range(len(news))):
                counterparts = [self._types(b, self._new_root) for b in news]
                mine = self._types(option, self._old_root)
                changes = [pairs[i][j] for j in range(len(news))]
                found += _uncovered(mine, counterparts, changes, _BACKWARD, path, keyword)
        for j, option in enumerate(news):
            if not any(not _toward(pairs[i][j], _FORWARD) for i in range(len(olds))):
                counterparts = [self._types(a, self._old_root) for a in olds]
                mine = self._types(option, self._new_root)
                changes = [pairs[i][j] for i in range(len(olds))]
                found += _uncovered(mine, counterparts, changes, _FORWARD, path, keyword)
        return found

    def _types(self, node: Schema, root: Schema) -> frozenset[str] | None:
        return _type_set(resolve(node, root))

    def _compare_one(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        if not _overlap(_type_set(old), _type_set(new)):
            return _type_changes(old, new, path)  # nothing else of the two can be compared
        return [
            *_type_changes(old, new, path),
            *self._value_changes(old, new, path),
            *_text_rule_changes(old, new, path),
            *_bound_changes(old, new, path),
            *_multiple_of_changes(old, new, path),
            *_unique_items_changes(old, new, path),
            *self._object_changes(old, new, path),
            *self._items_changes(old, new, path),
            *_other_changes(old, new, path),
        ]

    def _value_changes(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        was, now = _values(old), _values(new)
        keyword = "const" if "const" in new or "const" in old else "enum"
        found: list[_Change] = []
        if now is not None and (was is None or not was <= now):
            lost = "any value" if was is None else ", ".join(sorted(was - now))
            found.append(_Change(path, keyword, _BACKWARD, f"no longer accepts {lost}"))
        # Tolerant readers report values they do not know instead of refusing the message.
        if not self._tolerant and was is not None and (now is None or not now <= was):
            new_values = "any value" if now is None else ", ".join(sorted(now - was))
            found.append(_Change(path, keyword, _FORWARD, f"now also accepts {new_values}"))
        return found

    def _object_changes(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
        old_extra, new_extra = _extra(old), _extra(new)
        found: list[_Change] = []
        for field in sorted(old_fields.keys() & new_fields.keys()):
            found += self.compare(old_fields[field], new_fields[field], _joined(path, field))
        for field in sorted(old_fields.keys() - new_fields.keys()):
            found += self._removed_field(old_fields[field], new_extra, _joined(path, field))
        for field in sorted(new_fields.keys() - old_fields.keys()):
            found += self._added_field(new_fields[field], old_extra, _joined(path, field))
        found += _required_changes(old, new, path)
        if "additionalProperties" in old or "additionalProperties" in new:
            found += self._extra_changes(old_extra, new_extra, path)
        return found

    def _removed_field(self, was: Schema, new_extra: Schema | None, path: str) -> list[_Change]:
        if new_extra is None:
            detail = "removed, and unknown fields are refused: old messages carrying it are refused"
            return [_Change(path, "properties", _BACKWARD, detail)]
        # Now an unknown field: whatever the new schema allows for those must fit both ways.
        return self.compare(was, new_extra, path)

    def _added_field(self, now: Schema, old_extra: Schema | None, path: str) -> list[_Change]:
        if old_extra is not None:
            return self.compare(old_extra, now, path)
        if self._tolerant:
            return []  # old messages never carried it, and tolerant readers ignore it
        detail = "added where unknown fields were refused: old strict readers refuse it"
        return [_Change(path, "properties", _FORWARD, detail)]

    def _extra_changes(
        self, old_extra: Schema | None, new_extra: Schema | None, path: str
    ) -> list[_Change]:
        if old_extra is not None and new_extra is not None:
            return self.compare(old_extra, new_extra, _joined(path, "*"))
        if old_extra is not None:
            detail = "unknown fields are refused now"
            return [_Change(path, "additionalProperties", _BACKWARD, detail)]
        if new_extra is not None and not self._tolerant:
            detail = "unknown fields are allowed now; old strict readers refuse them"
            return [_Change(path, "additionalProperties", _FORWARD, detail)]
        return []

    def _items_changes(self, old: Schema, new: Schema, path: str) -> list[_Change]:
        if "items" not in old and "items" not in new:
            return []
        return self.compare(_items(old), _items(new), f"{path}[]")


def _uncovered(
    mine: frozenset[str] | None,
    others: Sequence[frozenset[str] | None],
    changes: Sequence[list[_Change]],
    direction: Literal[Compatibility.BACKWARD, Compatibility.FORWARD],
    path: str,
    keyword: str,
) -> list[_Change]:
    """An option no option on the other side covers: the changes against its one counterpart
    of an overlapping type, or the option as a whole."""
    overlapping = [k for k, types in enumerate(others) if _overlap(mine, types)]
    if len(overlapping) == 1:
        return _toward(changes[overlapping[0]], direction)
    shape = " or ".join(sorted(mine)) if mine else "anything"
    detail = f"no longer accepts {shape}" if direction is _BACKWARD else f"now also accepts {shape}"
    return [_Change(path, "type" if not overlapping else keyword, direction, detail)]


def _toward(
    changes: list[_Change], direction: Literal[Compatibility.BACKWARD, Compatibility.FORWARD]
) -> list[_Change]:
    return [change for change in changes if change.direction is direction]


def _type_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    was, now = _type_set(old), _type_set(new)
    detail = f"was {_types_text(was)}, now {_types_text(now)}"
    found: list[_Change] = []
    if not _covers(now, was):
        found.append(_Change(path, "type", _BACKWARD, detail))
    if not _covers(was, now):
        found.append(_Change(path, "type", _FORWARD, detail))
    return found


def _text_rule_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    # Whether one regular expression or format accepts all another does is undecidable here:
    # any change to one counts as both narrowing and widening.
    found: list[_Change] = []
    for keyword in ("format", "pattern"):
        was, now = old.get(keyword), new.get(keyword)
        if was == now:
            continue
        detail = f"was {was!r}, now {now!r}"
        if now is not None:
            found.append(_Change(path, keyword, _BACKWARD, detail))
        if was is not None:
            found.append(_Change(path, keyword, _FORWARD, detail))
    return found


def _bound_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    found: list[_Change] = []
    for keywords in _LOWER_BOUNDS:
        was, now = _bound(old, keywords, lower=True), _bound(new, keywords, lower=True)
        found += _bound_change(was, now, path, _stricter_lower)
    for keywords in _UPPER_BOUNDS:
        was, now = _bound(old, keywords, lower=False), _bound(new, keywords, lower=False)
        found += _bound_change(was, now, path, _stricter_upper)
    return found


def _bound_change(
    was: _Bound | None,
    now: _Bound | None,
    path: str,
    stricter: Callable[[_Bound, _Bound | None], bool],
) -> list[_Change]:
    detail = f"was {was or 'unbounded'}, now {now or 'unbounded'}"
    found: list[_Change] = []
    if now is not None and stricter(now, was):
        found.append(_Change(path, now.keyword, _BACKWARD, detail))
    if was is not None and stricter(was, now):
        found.append(_Change(path, was.keyword, _FORWARD, detail))
    return found


def _bound(node: Schema, keywords: tuple[str, ...], *, lower: bool) -> _Bound | None:
    bounds = [_Bound(node[k], k.startswith("exclusive"), k) for k in keywords if k in node]
    if not bounds:
        return None
    stricter = _stricter_lower if lower else _stricter_upper
    best = bounds[0]
    for bound in bounds[1:]:
        best = bound if stricter(bound, best) else best
    return best


def _stricter_lower(bound: _Bound, other: _Bound | None) -> bool:
    return other is None or (bound.value, bound.exclusive) > (other.value, other.exclusive)


def _stricter_upper(bound: _Bound, other: _Bound | None) -> bool:
    return other is None or (-bound.value, bound.exclusive) > (-other.value, other.exclusive)


def _multiple_of_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    was, now = old.get("multipleOf"), new.get("multipleOf")
    if was == now:
        return []
    detail = f"was {was}, now {now}"
    found: list[_Change] = []
    # Every multiple of `was` is a multiple of `now` exactly when `now` divides `was`.
    if now is not None and (was is None or not _divides(now, was)):
        found.append(_Change(path, "multipleOf", _BACKWARD, detail))
    if was is not None and (now is None or not _divides(was, now)):
        found.append(_Change(path, "multipleOf", _FORWARD, detail))
    return found


def _divides(divisor: float, number: float) -> bool:
    return (Fraction(str(number)) / Fraction(str(divisor))).denominator == 1


def _unique_items_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    was, now = bool(old.get("uniqueItems")), bool(new.get("uniqueItems"))
    if now and not was:
        return [_Change(path, "uniqueItems", _BACKWARD, "repeated items are refused now")]
    if was and not now:
        return [_Change(path, "uniqueItems", _FORWARD, "repeated items are allowed now")]
    return []


def _required_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    was, now = set(old.get("required", ())), set(new.get("required", ()))
    added = "became required: old messages without it are refused"
    dropped = "no longer required: old readers refuse messages without it"
    return [
        *(
            _Change(_joined(path, field), "required", _BACKWARD, added)
            for field in sorted(now - was)
        ),
        *(
            _Change(_joined(path, field), "required", _FORWARD, dropped)
            for field in sorted(was - now)
        ),
    ]


def _other_changes(old: Schema, new: Schema, path: str) -> list[_Change]:
    found: list[_Change] = []
    for keyword in sorted((old.keys() | new.keys()) - _HANDLED):
        if old.get(keyword) != new.get(keyword):
            detail = (
                f"changed from {old.get(keyword)!r} to {new.get(keyword)!r}; which way is unknown"
            )
            found += [_Change(path, keyword, d, detail) for d in (_BACKWARD, _FORWARD)]
    return found


def _type_set(node: Schema) -> frozenset[str] | None:
    declared = node.get("type")
    if declared is None:
        return None
    return frozenset([declared] if isinstance(declared, str) else declared)


def _covers(outer: frozenset[str] | None, inner: frozenset[str] | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return all(t in outer or (t == "integer" and "number" in outer) for t in inner)


def _overlap(one: frozenset[str] | None, other: frozenset[str] | None) -> bool:
    return one is None or other is None or _covers(one, other) or _covers(other, one)


def _types_text(types: frozenset[str] | None) -> str:
    return "any type" if types is None else " or ".join(sorted(types))


def _values(node: Schema) -> frozenset[str] | None:
    """The values a node allows by enum or const, as canonical JSON, or None: any."""
    if "const" in node:
        return frozenset({json.dumps(node["const"], sort_keys=True)})
    if "enum" in node:
        return frozenset(json.dumps(value, sort_keys=True) for value in node["enum"])
    return None


def _extra(node: Schema) -> Schema | None:
    """What a node allows for fields it does not name: a schema, or None when it refuses them."""
    return _subschema(node.get("additionalProperties", True))


def _subschema(value: object) -> Schema | None:
    if value is False:
        return None
    return dict(value) if isinstance(value, Mapping) else {}


def _items(node: Schema) -> Schema:
    # `items: false` allows no item: a schema nothing matches.
    items = _subschema(node.get("items", True))
    return {"not": {}} if items is None else items


def _options(node: Schema) -> list[Schema]:
    """The alternatives of an anyOf/oneOf node, each with the node's own keywords; a node
    without any is its only option."""
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            rest = {k: v for k, v in node.items() if k != keyword}
            return [{**rest, **option} for option in node[keyword]]
    return [node]


def _joined(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
