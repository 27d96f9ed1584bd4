"""`frozen`: the service's value types, immutable as the type checker reads them.

A frozen dataclass sets each field in `__init__` through `object.__setattr__`, looked up anew per
field, since its own `__setattr__` refuses: 0.94 µs for five fields against 0.25 µs for a plain
dataclass on this machine. A purchase-order command makes about two dozen values on its way
through (command, identity, events, snapshot, outputs, answer): the decision path alone
(benchmarks.decision_path) went from 123 to about 105 µs per purchase-order command without it.

`frozen` builds a plain dataclass with the hash a frozen one has, and declares it frozen to the
type checker (PEP 681 `frozen_default`): mypy refuses any assignment to a field, in `make lint`,
as it would for `dataclass(frozen=True)`; only the runtime check is gone, so `setattr` or an
assignment through a value typed `Any` would go unnoticed (a shared value such as SEALED changed
that way would no longer be found as a key). Equality, hashing, `repr`, `dataclasses.replace`
and pattern matching behave as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    # unsafe_hash: the __hash__ frozen=True would have generated from the fields (a plain
    # dataclass with eq gets none), so values stay usable as keys and in sets.
    return dataclass(unsafe_hash=True)(cls)
