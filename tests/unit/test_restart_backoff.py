"""The relay child's restart schedule: full jitter under a doubling, capped ceiling, and a quick
restart again once a child has run for a while."""

from __future__ import annotations

import random

from service.entrypoints.restarts import RestartBackoff


def highest(low: float, high: float) -> float:
    """A draw that always takes the upper bound, to read the ceiling off the delays."""
    return high


def test_ceilings_double_from_the_base_up_to_the_cap() -> None:
    backoff = RestartBackoff(base_seconds=0.5, cap_seconds=5.0, draw=highest)
    delays = [backoff.next_delay(ran_for_seconds=1.0) for _ in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_every_delay_is_drawn_between_zero_and_its_ceiling() -> None:
    backoff = RestartBackoff(base_seconds=0.5, cap_seconds=8.0, draw=random.Random(7).uniform)
    for _ in range(200):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay(ran_for_seconds=0.1)
        assert 0.0 <= delay <= ceiling <= 8.0
    # Full jitter: once at the cap, delays spread over the whole range, short ones included.
    at_cap = [backoff.next_delay(ran_for_seconds=0.1) for _ in range(200)]
    assert min(at_cap) < 1.0
    assert max(at_cap) > 7.0


def test_a_child_that_ran_long_enough_starts_a_new_series() -> None:
    backoff = RestartBackoff(base_seconds=0.5, cap_seconds=30.0, stable_after_seconds=60.0)
    backoff.draw = highest
    for _ in range(5):
        backoff.next_delay(ran_for_seconds=2.0)
    assert backoff.next_delay(ran_for_seconds=59.0) == 16.0  # still one series
    assert backoff.next_delay(ran_for_seconds=60.0) == 0.5
    assert backoff.next_delay(ran_for_seconds=2.0) == 1.0


def test_the_ceiling_stays_at_the_cap_however_many_deaths() -> None:
    backoff = RestartBackoff(base_seconds=0.5, cap_seconds=30.0, draw=highest)
    for _ in range(5000):
        delay = backoff.next_delay(ran_for_seconds=0.0)
    assert delay == 30.0
