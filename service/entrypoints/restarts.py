"""When to start a crashed child process again: exponential back-off with full jitter.

A child that dies at once on every start (a bad setting, a broker refusing its credentials)
would otherwise be restarted in a tight loop, each start costing connections to Postgres and
Kafka. Full jitter (a delay drawn between 0 and the capped exponential ceiling) is the variant
that spreads restarts best when many replicas crash together, as after a broker outage:
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# Past this many doublings every ceiling is the cap; stops the exponent growing without bound.
_MAX_DOUBLINGS = 32


@dataclass
class RestartBackoff:
    """Delays between restarts. A child that ran for `stable_after_seconds` before dying is
    treated as a fresh failure, not one more in a series: its restart is quick again."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    stable_after_seconds: float = 60.0
    draw: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    """Picks the delay between its two bounds; tests pass their own."""
    failures: int = 0
    """Deaths in the current series (reset by a run of at least `stable_after_seconds`)."""

    def ceiling(self) -> float:
        """The longest the next delay may be."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** min(self.failures, _MAX_DOUBLINGS))

    def next_delay(self, ran_for_seconds: float) -> float:
        """How long to wait before starting again a child that ran this long and died."""
        if ran_for_seconds >= self.stable_after_seconds:
            self.failures = 0
        ceiling = self.ceiling()
        self.failures += 1
        return self.draw(0.0, ceiling)
