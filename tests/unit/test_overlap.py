"""while_waiting: statements start before the work, both finish before it returns, and an
error of either is raised only once the statements are done."""

from __future__ import annotations

import asyncio

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
