"""Back-off pauses are drawn with full jitter: never negative, never above the capped
exponential ceiling, and spread out, so instances that failed together do not retry together."""

from __future__ import annotations

import asyncio
import random

import pytest

from service.app.retry import Retrier, RetryPolicy
from service.errors import ProcessingAbandonedError


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


def test_the_ceiling_doubles_from_the_first_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(first_backoff_seconds=0.1, max_backoff_seconds=1.0)
    assert [policy.ceiling(attempt) for attempt in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_an_injected_source_makes_pauses_exact() -> None:
    top = RetryPolicy(first_backoff_seconds=0.1, max_backoff_seconds=1.0, uniform=highest)
    bottom = RetryPolicy(first_backoff_seconds=0.1, max_backoff_seconds=1.0, uniform=lowest)
    assert top.backoff(2) == pytest.approx(0.4)
    assert bottom.backoff(2) == 0.0


@pytest.mark.parametrize("attempt", [0, 1, 5, 20, 1_000])
def test_pauses_stay_between_zero_and_the_ceiling(attempt: int) -> None:
    draws = random.Random(attempt)
    policy = RetryPolicy(first_backoff_seconds=0.05, max_backoff_seconds=5.0, uniform=draws.uniform)
    pauses = [policy.backoff(attempt) for _ in range(500)]
    assert min(pauses) >= 0.0
    assert max(pauses) <= policy.ceiling(attempt) <= 5.0


def test_the_first_pause_is_bounded_by_the_first_backoff() -> None:
    policy = RetryPolicy(first_backoff_seconds=0.05, uniform=random.Random(1).uniform)
    assert all(0.0 <= policy.backoff(0) <= 0.05 for _ in range(500))


def test_a_source_that_strays_out_of_bounds_is_clamped() -> None:
    above = RetryPolicy(
        first_backoff_seconds=0.1, max_backoff_seconds=1.0, uniform=lambda a, b: b * 2
    )
    below = RetryPolicy(
        first_backoff_seconds=0.1, max_backoff_seconds=1.0, uniform=lambda a, b: -1.0
    )
    assert above.backoff(10) == 1.0
    assert below.backoff(10) == 0.0


def test_pauses_are_spread_not_in_lockstep() -> None:
    """Two instances retrying the same attempt after the same failover wait different times,
    and one instance's pauses across attempts are not a fixed sequence."""
    # Seeded, to keep the test deterministic; the service draws from `random.uniform`.
    draws = random.Random(7)
    policy = RetryPolicy(first_backoff_seconds=0.05, max_backoff_seconds=5.0, uniform=draws.uniform)
    for attempt in range(8):
        pauses = {policy.backoff(attempt) for _ in range(50)}
        assert len(pauses) > 40, f"attempt {attempt} drew {sorted(pauses)}"
        ceiling = policy.ceiling(attempt)
        # Uniform over [0, ceiling]: both halves are drawn from.
        assert any(p < ceiling / 2 for p in pauses)
        assert any(p > ceiling / 2 for p in pauses)


def test_the_default_source_is_shared_randomness_not_a_fixed_seed() -> None:
    assert RetryPolicy().uniform is random.uniform
    assert RetryPolicy() == RetryPolicy(uniform=lowest), "the source is not part of equality"


async def test_a_stop_cuts_a_pause_short() -> None:
    stopping = asyncio.Event()
    retrier = Retrier(RetryPolicy(first_backoff_seconds=60, uniform=highest), stopping)
    pausing = asyncio.create_task(retrier.pause(0))
    await asyncio.sleep(0)
    stopping.set()
    with pytest.raises(ProcessingAbandonedError):
        await asyncio.wait_for(pausing, 1.0)
