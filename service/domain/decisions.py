"""What every decide() returns, and the checks every document family shares. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Generic, TypeVar

from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen

E = TypeVar("E")
S = TypeVar("S")
StatusT = TypeVar("StatusT", bound=StrEnum)


@frozen
class Accepted(Generic[E]):
    events: tuple[E, ...]


@frozen
class Rejected:
    problems: tuple[Problem, ...]


@frozen
class Transition(Generic[E, S]):
    """One event with the states on either side of it."""

    event: E
    before: S | None
    after: S


def fold_events(
    current: S | None, events: Sequence[E], evolve: Callable[[S | None, E], S]
) -> list[Transition[E, S]]:
    """Each event with the state before and after it, in order."""
    transitions = []
    for event in events:
        after = evolve(current, event)
        transitions.append(Transition(event, current, after))
        current = after
    return transitions


def version_problems(expected: int | None, actual: int) -> list[Problem]:
    """Optimistic concurrency: `actual` is 0 for a document that does not exist."""
    if expected is None or expected == actual:
        return []
    return [
        Problem(
            ErrorCode.VERSION_CONFLICT,
            f"expected version {expected}, but the current version is {actual}",
            "expected_version",
        )
    ]


def either(statuses: Iterable[str]) -> str:
    """'a' or 'b', sorted, for messages that name the statuses a rule allows."""
    return " or ".join(f"'{s}'" for s in sorted(statuses))


def transition_problems(
    table: Mapping[StatusT, frozenset[StatusT]],
    current: StatusT,
    target: StatusT,
    reason: object | None,
    accepting_reason: frozenset[StatusT],
) -> list[Problem]:
    """A move not in the table, and a reason given with a status that takes none."""
    problems = []
    if target not in table[current]:
        allowed = ", ".join(sorted(f"'{s}'" for s in table[current])) or "none (terminal)"
        problems.append(
            Problem(
                ErrorCode.INVALID_STATUS,
                f"Cannot transition from '{current}' to '{target}'; allowed: {allowed}",
                "payload.status",
            )
        )
    if reason is not None and target not in accepting_reason:
        problems.append(
            Problem(
                ErrorCode.INVALID_REQUEST,
                f"a reason is accepted only when the status becomes {either(accepting_reason)},"
                f" not '{target}'",
                "payload.reason",
            )
        )
    return problems
