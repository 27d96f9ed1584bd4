"""A claim that waits for another transaction's claim of the same key, on the real Postgres: it
reads what that transaction left, whichever way it ended.

The claim statement cannot see a row committed while it waited (its snapshot is older), nor the
rows it inserts itself; what it answers for each key rests on telling those apart.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.adapters.crypto import MasterKey, new_key
from service.adapters.unit_of_work import PostgresStore
from service.app.ports import Answer, Claim, Outcome


class _Abandoned(Exception):
    """Rolls the first transaction back."""


async def _claimed_and_answered(
    store: PostgresStore, keys: list[tuple[str, bytes]], claiming: asyncio.Event
) -> list[Claim]:
    async with store.unit_of_work() as uow:
        claiming.set()
        claims = await uow.claim_many(keys)
        new = [key for (key, _), claim in zip(keys, claims, strict=True) if claim is Claim.NEW]
        await uow.answer_many([Answer(key, Outcome.ACCEPTED, []) for key in new])
    return claims


@pytest.mark.parametrize("first_commits", [True, False], ids=["committed", "rolled-back"])
async def test_a_claim_that_waited_reads_what_the_other_transaction_left(
    pool: asyncpg.Pool, first_commits: bool
) -> None:
    store = PostgresStore(pool, MasterKey(new_key()))
    async with store.unit_of_work() as earlier:
        await earlier.claim_many([("earlier", b"e")])
        await earlier.answer_many([Answer("earlier", Outcome.ACCEPTED, [])])

    claiming = asyncio.Event()
    second: asyncio.Task[list[Claim]] | None = None
    try:
        async with store.unit_of_work() as first:
            await first.claim_many([("same", b"a"), ("other", b"b")])
            second = asyncio.create_task(
                _claimed_and_answered(
                    store,
                    [("earlier", b"e"), ("same", b"a"), ("other", b"x"), ("fresh", b"f")],
                    claiming,
                )
            )
            await claiming.wait()
            await asyncio.sleep(0.5)
            assert not second.done(), "the second claim waits for the first transaction"
            await first.answer_many(
                [Answer("same", Outcome.ACCEPTED, []), Answer("other", Outcome.ACCEPTED, [])]
            )
            if not first_commits:
                raise _Abandoned
    except _Abandoned:
        pass
    assert second is not None
    claims = await asyncio.wait_for(second, 30)

    if first_commits:
        # Committed while the second waited: the same content is a duplicate, other content
        # under its key a reuse.
        assert claims == [Claim.DUPLICATE, Claim.DUPLICATE, Claim.REUSED, Claim.NEW]
        stored = {"earlier": b"e", "same": b"a", "other": b"b", "fresh": b"f"}
    else:
        # Rolled back: the keys were never claimed, so the second transaction claims them.
        assert claims == [Claim.DUPLICATE, Claim.NEW, Claim.NEW, Claim.NEW]
        stored = {"earlier": b"e", "same": b"a", "other": b"x", "fresh": b"f"}
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT message_key, request_hash FROM inbox")
    assert {row["message_key"]: bytes(row["request_hash"]) for row in rows} == stored
