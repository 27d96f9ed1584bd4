"""while_waiting: statements start before the work, both finish before it returns, and an
error of either is raised only once the statements are done."""

from __future__ import annotations

import asyncio
import gc

import pytest

from service.app.overlap import while_waiting


class Statements:
    """Stands in for statements on a connection: records when they were sent and answered."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent = False
        self.answered = False
        self._error = error
        self.reply = asyncio.Event()

    async def run(self) -> None:
        self.sent = True
        await self.reply.wait()  # the database executing them
        self.answered = True
        if self._error is not None:
            raise self._error


async def test_the_statements_are_sent_before_the_work_and_answered_before_it_returns() -> None:
    statements = Statements()
    seen: list[bool] = []

    def work() -> str:
        seen.append(statements.sent)
        statements.reply.set()  # the database answers while the work runs
        return "built"

    assert await while_waiting(statements.run(), work) == "built"
    assert seen == [True], "the work ran before the statements were on their way"
    assert statements.answered


async def test_an_error_of_the_statements_is_raised_after_the_work() -> None:
    statements = Statements(error=RuntimeError("refused by Postgres"))
    done: list[str] = []

    def work() -> None:
        statements.reply.set()
        done.append("built")

    with pytest.raises(RuntimeError, match="refused by Postgres"):
        await while_waiting(statements.run(), work)
    assert done == ["built"]


async def test_an_error_of_the_work_waits_for_the_statements_and_is_the_one_raised() -> None:
    statements = Statements(error=RuntimeError("refused by Postgres"))

    def work() -> None:
        # Answered only after the work fails: the error must wait for the statements.
        asyncio.get_running_loop().call_later(0.05, statements.reply.set)
        raise ValueError("a defect building messages")

    with pytest.raises(ValueError, match="a defect building messages"):
        await while_waiting(statements.run(), work)
    assert statements.answered, "the connection would still be busy for the rollback"


class Cancellable(Statements):
    """Statements that record when they have ended, however they end."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = False

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self.ended = True


async def test_a_cancellation_before_the_work_ends_the_statements_first() -> None:
    statements = Cancellable()
    worked: list[str] = []

    async def cancelled_as_it_starts() -> None:
        current = asyncio.current_task()
        assert current is not None

        async def statements_that_see_the_cancel() -> None:
            current.cancel()  # shutdown, say, in the very turn the statements are sent
            await statements.run()

        await while_waiting(statements_that_see_the_cancel(), lambda: worked.append("built"))

    task = asyncio.create_task(cancelled_as_it_starts())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worked == []
    assert statements.sent
    assert statements.ended, "the statements would outlive the transaction's rollback"


async def test_a_cancellation_while_waiting_after_a_failed_work_ends_the_statements_first() -> None:
    statements = Cancellable()

    def work() -> None:
        raise ValueError("a defect building messages")

    task = asyncio.create_task(while_waiting(statements.run(), work))
    await asyncio.sleep(0.02)  # the work has failed; the statements are still executing
    assert statements.sent
    assert not statements.ended
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert statements.ended, "the statements would outlive the transaction's rollback"


class Stubborn(Cancellable):
    """Statements that take `delay` seconds to give way to a cancellation, as a statement
    waiting for a lock does until the server answers the cancel request."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self._delay = delay

    async def run(self) -> None:
        try:
            await super().run()
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(self._delay))
            raise


async def test_a_cancellation_while_waiting_after_the_work_ends_the_statements_first() -> None:
    statements = Cancellable()
    task = asyncio.create_task(while_waiting(statements.run(), lambda: "built"))
    await asyncio.sleep(0.02)  # the work is done; the statements are still executing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert statements.ended, "the statements would outlive the transaction's rollback"


async def test_repeated_cancellations_still_wait_for_statements_slow_to_give_way() -> None:
    statements = Stubborn(delay=0.05)

    def work() -> None:
        raise ValueError("a defect building messages")

    task = asyncio.create_task(while_waiting(statements.run(), work))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # shutdown insisting while the statements are still giving way
    with pytest.raises(asyncio.CancelledError):
        await task
    assert statements.ended, "the statements would outlive the transaction's rollback"


async def test_an_interrupt_in_the_work_cancels_the_statements_instead_of_waiting() -> None:
    statements = Cancellable()

    def work() -> None:
        # Left alone, the statements would answer a little later.
        asyncio.get_running_loop().call_later(0.2, statements.reply.set)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await while_waiting(statements.run(), work)
    assert statements.ended
    assert not statements.answered, "Ctrl-C waited for statements that may wait for a lock"


async def test_the_statements_error_is_seen_when_the_work_fails_too() -> None:
    loop = asyncio.get_running_loop()
    unseen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: unseen.append(context))
    statements = Statements(error=RuntimeError("refused by Postgres"))

    def work() -> None:
        statements.reply.set()
        raise ValueError("a defect building messages")

    with pytest.raises(ValueError, match="a defect building messages"):
        await while_waiting(statements.run(), work)
    gc.collect()  # a task whose exception nobody retrieved reports it when collected
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert unseen == []
