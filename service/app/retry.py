"""One way to try again: exponential back-off with full jitter that a stop cuts short, and a
loop that retries what its caller says can be waited out. Used by the processor, previews and
the outbox relay."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import field
from typing import TypeVar

from service.app.observer import RetryCause
from service.domain.values import frozen
from service.errors import ProcessingAbandonedError

log = logging.getLogger(__name__)
T = TypeVar("T")


@frozen
class RetryPolicy:
    first_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 5.0
    unexpected_failure_attempts: int = 3
    uniform: Callable[[float, float], float] = field(
        default=random.uniform, compare=False, repr=False
    )
    """Where the jitter comes from: `(low, high) -> a number in [low, high]`. Tests pass a
    fixed one to get exact pauses."""

    def ceiling(self, attempt: int) -> float:
        """The longest pause before try `attempt + 1`: exponential, capped."""
        exponential = self.first_backoff_seconds * 2 ** min(attempt, 20)
        return float(min(self.max_backoff_seconds, exponential))

    def backoff(self, attempt: int) -> float:
        """A pause drawn uniformly from [0, ceiling] ("full jitter"). Every instance hits the
        same failover at the same moment; exact exponential pauses would bring them back in
        lockstep, retry after retry, while random ones spread them out
        (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""
        ceiling = self.ceiling(attempt)
        # Clamped: a random source is trusted for spread, not for staying within bounds.
        return min(ceiling, max(0.0, self.uniform(0.0, ceiling)))


RetryDecision = Callable[[Exception], Awaitable[RetryCause | None]]
"""Why an error is worth another try, or None to let it through."""


class Retrier:
    """Tries again after growing pauses, until the work succeeds, an error is not worth another
    try, or `stopping` is set (then ProcessingAbandonedError: the caller leaves its work
    uncommitted, to be done again by whoever comes next)."""

    def __init__(
        self,
        policy: RetryPolicy,
        stopping: asyncio.Event,
        on_retry: Callable[[RetryCause], None] = lambda _: None,
    ) -> None:
        self.policy = policy
        self._stopping = stopping
        self._on_retry = on_retry

    async def pause(self, attempt: int) -> None:
        """Wait before try `attempt + 1`; raises ProcessingAbandonedError once stopping."""
        await self.wait(self.policy.backoff(attempt))

    async def wait(self, seconds: float) -> None:
        """Wait `seconds` (a pause drawn by the caller, e.g. to log it first); raises
        ProcessingAbandonedError once stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise ProcessingAbandonedError("the service is stopping; the work will be done again")

    def retried(self, cause: RetryCause) -> None:
        self._on_retry(cause)

    async def run(self, work: Callable[[], Awaitable[T]], retry_on: RetryDecision, what: str) -> T:
        """`work` until it succeeds; an error `retry_on` gives a cause for is logged, counted
        and waited out, any other is raised."""
        attempt = 0
        while True:
            try:
                return await work()
            except Exception as error:
                cause = await retry_on(error)
                if cause is None:
                    raise
                log.warning("%s: %s, retrying: %s", what, cause.value, described(error))
                self._on_retry(cause)
            await self.pause(attempt)
            attempt += 1


def described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
