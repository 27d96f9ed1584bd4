"""Python work done while Postgres executes a statement of the same transaction.

A batch's thread waits for each statement it sends, and Postgres waits while the thread
decides and builds: on two cores the two take turns, so the time per command is the sum of
both. Work that needs nothing from a statement, and that the statement needs nothing of, can
run while it executes instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def while_waiting(statements: Coroutine[Any, Any, None], work: Callable[[], T]) -> T:
    """Starts `statements`, runs `work` while the database executes the first of them, and
    returns what `work` returned once both are done.

    `work` must not reach the connection `statements` use: it is busy until they end. Whatever
    goes wrong, `statements` have ended before this returns or raises, so the transaction rolls
    back on an idle connection: an error of `work` is raised once they have; an error of theirs
    once `work` is done; a cancellation, an interrupt or an exit cancels them and waits for them
    first."""
    sending = asyncio.ensure_future(statements)
    try:
        # One turn of the event loop: the task writes its first statement to the socket before
        # `work` holds the thread.
        await asyncio.sleep(0)
        result = work()
    except GeneratorExit:
        # This coroutine is being closed: nothing can be waited for any more.
        sending.cancel()
        raise
    except BaseException as error:
        # A cancellation, an interrupt or an exit does not wait for the statements to end on
        # their own (one may wait for a lock for long); an error of the work does.
        await _ended(sending, cancel=not isinstance(error, Exception))
        raise
    # Cancelled here, the task is cancelled with this one, which waits for it to end.
    await sending
    return result


async def _ended(sending: asyncio.Future[None], *, cancel: bool) -> None:
    """Waits until `sending` has ended, cancelling it if asked to or if cancelled meanwhile;
    its own error is dropped (the caller raises its own), a cancellation raised afterwards."""
    cancelled = False
    if cancel:
        sending.cancel()
    while not sending.done():
        try:
            await asyncio.wait((sending,))
        except asyncio.CancelledError:
            sending.cancel()
            cancelled = True
    if not sending.cancelled():
        sending.exception()  # retrieved, so that it is not reported as never seen
    if cancelled:
        raise asyncio.CancelledError
