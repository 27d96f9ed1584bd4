"""Outcomes published from memory right after their transaction commits, by the instance that
decided them; the outbox row stays until the broker has the message, and the relay is the
recovery path. This saves the relay's read-publish-delete round trip, and its process's work,
for nearly every message.

What keeps each key's messages in order on each topic (the relay's guarantee, kept):
- An instance publishes its rows in commit order, through one queue, at most one batch per
  partition per round; aiokafka keeps one batch per partition in flight.
- A batch publishes a (topic, key) from memory only when no row of it waits in the outbox but
  this instance's own (`publisher`, a number drawn at each start), and this instance is not
  keeping the key away (`leaving`). Otherwise its rows of that key go to the relay
  (service/adapters/unit_of_work.py). No batch takes rows from their publisher: it may still be
  sending them, and a copy landing after the relay's later messages would undo them on a
  compacted state topic.
- The relay never publishes a row while an earlier row of its (topic, key) is meant to be
  published from memory and younger than the sweep age (service/adapters/relay.py): it waits
  for the publisher to delete it, or sweeps it, then publishes in id order.
- When a send fails, every row this instance holds is left to the relay, and so are the rows of
  batches that looked at the outbox before the failure (`epoch`); for a back-off after, new
  rows go to the relay too, and the producer is made anew (an idempotent producer's sequence
  numbers do not survive a refused batch).
- Rows of an instance that died are swept by the relay once older than
  OUTBOX_SWEEP_AFTER_SECONDS.
A message may be published twice (same event id), as with the relay alone; never a later one
of a key ahead of an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata, TopicPartition

from service.adapters.database import OUTBOX_CHANNEL
from service.adapters.kafka import KeyHashPartitioner
from service.app.ports import OutboxMessage
from service.app.retry import RetryPolicy, described
from service.domain.values import frozen

if TYPE_CHECKING:
    from service.adapters.tracing import Tracing

log = logging.getLogger(__name__)

STOP_FLUSH_SECONDS = 5.0
SUBMIT_TIMEOUT_SECONDS = 10.0
"""How long a round may take to hand its batches to the producer (metadata, a full buffer)."""
ANSWER_TIMEOUT_SECONDS = 60.0
"""aiokafka answers every batch within its request timeout (15 s: delivered, or expired); a
round waits for those answers, so that nothing it sent can land after the relay's copy. This
bounds the wait should the producer itself hang. A round thus ends within 25 s (10 s to hand
its batches over, 15 s for their answers): OUTBOX_SWEEP_AFTER_SECONDS must be longer, or the
relay sends copies of what the instance is still sending."""
MAX_QUEUED_ROWS = 50_000
"""Past this many rows waiting to be sent (the broker slow, not down), new rows go to the relay
rather than into memory."""
DATABASE_WAIT_SECONDS = 10.0
RETRY_HAND_OVER_SECONDS = 1.0


Pair = tuple[str, bytes]
"""A topic and a message key: the unit of order."""


@frozen
class Committed:
    """A message whose outbox row committed, for this instance to publish."""

    outbox_id: int
    message: OutboxMessage


class DirectPublisher:
    def __init__(
        self,
        producer: Callable[[], AIOKafkaProducer],
        pool: asyncpg.Pool,
        *,
        reply_prefixes: tuple[str, ...] = (),
        pause: RetryPolicy | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`producer` makes a producer, not started: one at start, a new one after a failure."""
        self._new_producer = producer
        self._producer: AIOKafkaProducer | None = None
        self._pool = pool
        self._reply_prefixes = reply_prefixes
        self._pause = pause or RetryPolicy(first_backoff_seconds=1.0, max_backoff_seconds=30.0)
        self._tracing = tracing
        self._partitioner = KeyHashPartitioner()
        self.instance = secrets.randbits(63) or 1
        """Marks the outbox rows this process publishes (`publisher`); drawn at each start, so
        a restarted instance finds its earlier rows as another's."""
        self._queue: list[Committed] = []
        self._held: dict[int, Pair] = {}
        """Outbox ids this instance publishes (queued, in flight, or sent and being deleted),
        with their topic and key."""
        self._handed_over: dict[int, Pair] = {}
        """Rows this instance leaves to the relay, until they are marked as the relay's."""
        self._inserted: dict[int, Pair] = {}
        """Rows of transactions not yet known to have committed: between a COMMIT and the
        call to `committed`, another batch of their keys must not go ahead of them."""
        self._undeleted: dict[int, Pair] = {}
        """Published rows whose delete failed: until it succeeds, later rows of their keys go
        to the relay, which waits behind them, so that a sweep of them never comes last."""
        self._background: set[asyncio.Future[Any]] = set()
        """Producers stopping, hand-overs after the publisher stopped."""
        self._wake = asyncio.Event()
        self._failures = 0
        self._paused_until = 0.0
        self.running = False
        self.failovers_total = 0
        self.epoch = 0
        """Counts hand-overs: a batch that looked at the outbox in an earlier epoch may have
        counted on rows this instance has since left to the relay."""
        self.published_total = 0

    def status(self) -> dict[str, Any]:
        """What /health shows of it."""
        paused_for = self._paused_until - time.monotonic()
        return {
            "running": self.running,
            "published_total": self.published_total,
            "failovers_total": self.failovers_total,
            "held": len(self._held),
            "paused_seconds": round(max(0.0, paused_for), 3),
        }

    def leaving(self, pairs: Collection[Pair]) -> set[Pair]:
        """Which of `pairs` (topic, key) a batch must not publish from memory although the
        outbox shows only this instance's own rows of them: rows it leaves to the relay but has
        not marked yet, rows of a transaction whose commit it has not been told of, and
        published rows it could not delete."""
        away: set[Pair] = set()
        for rows in (self._handed_over, self._inserted, self._undeleted):
            if rows:
                away.update(pair for pair in rows.values() if pair in pairs)
        return away

    def inserted(self, rows: Sequence[Committed]) -> None:
        """`rows` are in the outbox of a transaction about to commit."""
        self._inserted.update((row.outbox_id, _pair(row)) for row in rows)

    def abandoned(self, rows: Sequence[Committed]) -> None:
        """The transaction that inserted `rows` rolled back."""
        for row in rows:
            self._inserted.pop(row.outbox_id, None)

    def taking(self) -> Callable[[str], bool]:
        """Whether a new message for a topic is published from memory, as of now (one answer
        for a whole batch). Replies never are: they go to a topic their sender named, whose
        failure must never pause everything else."""
        if (
            not self.running
            or time.monotonic() < self._paused_until
            or len(self._queue) > MAX_QUEUED_ROWS
        ):
            return _never
        prefixes = self._reply_prefixes
        if not prefixes:
            return _always
        return lambda topic: not topic.startswith(prefixes)

    def committed(self, rows: Sequence[Committed], epoch: int) -> None:
        """Called right after the transaction that inserted `rows` committed, having looked at
        the outbox in `epoch`."""
        if not rows:
            return
        pairs = {row.outbox_id: _pair(row) for row in rows}
        for outbox_id in pairs:
            self._inserted.pop(outbox_id, None)
        if epoch != self.epoch or not self.running:
            # It counted on rows since left to the relay: its own must follow them there.
            self._handed_over.update(pairs)
            if not self.running:  # no round will come: hand them over now
                self._track(asyncio.ensure_future(self._hand_over()))
        else:
            self._held.update(pairs)
            self._queue += rows
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish what commits, until `stop`; then leave what is not published to the relay."""
        self.running = True
        try:
            with contextlib.suppress(Exception):  # the first round starts one again
                await self._producer_started()
            while not stop.is_set():
                waiting = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiting:
                        waiter.cancel()
                self._wake.clear()
                await self._publish_round()
                if self._queue:  # more than one batch per partition held: go on at once
                    self._wake.set()
                elif self._handed_over or self._undeleted:
                    asyncio.get_running_loop().call_later(RETRY_HAND_OVER_SECONDS, self._wake.set)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_FLUSH_SECONDS):
                    while self._queue:
                        await self._publish_round()
        finally:
            self.running = False
            # The producer answers for everything it holds (delivered or expired) before the
            # rows go to the relay, so that nothing of it lands after the relay's copy.
            self._retire_producer()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                    await asyncio.gather(*self._background, return_exceptions=True)
            self._fail_over("stopping")
            await self._hand_over()

    async def _producer_started(self) -> AIOKafkaProducer:
        producer = self._producer
        if producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                self._producer = producer
                self._retire_producer()
                raise
            self._producer = producer
        return producer

    async def _publish_round(self) -> None:
        if self._handed_over:
            await self._hand_over()
        if self._undeleted and await self._delete(sorted(self._undeleted)):
            self._undeleted.clear()
        if not self._queue:
            return
        deliveries: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(SUBMIT_TIMEOUT_SECONDS):
                sent = await self._submit(self._queue, deliveries)
            async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                # Not gather: a timeout must not cancel what the producer is still sending.
                await asyncio.wait(deliveries)
            for delivery in deliveries:
                delivery.result()  # raises what the broker refused, or why it was not sent
        except Exception as error:
            if deliveries:
                # Whatever of this round is still on its way must arrive (or expire) before
                # the relay sends it again: a late copy after a later message would undo it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                        await asyncio.wait(deliveries)
            self._fail_over(described(error))
            self._retire_producer()
            await self._hand_over()
            return
        self._failures = 0
        del self._queue[: len(sent)]
        await self._delete_published(sent)

    async def _delete_published(self, sent: Sequence[Committed]) -> None:
        """The broker has `sent`: their rows go, and this instance holds them no more. Held
        until the delete returns: a batch meanwhile may publish later rows of their keys from
        memory, since these are on the broker already."""
        deleted = await self._delete([row.outbox_id for row in sent])
        published = {row.outbox_id: self._held.pop(row.outbox_id) for row in sent}
        self.published_total += len(published)
        if not deleted:
            self._undeleted.update(published)

    async def _delete(self, ids: list[int]) -> bool:
        """Delete published rows; whether it did."""
        try:
            async with self._pool.acquire(timeout=DATABASE_WAIT_SECONDS) as conn:
                await conn.execute(
                    "DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                    ids,
                    timeout=DATABASE_WAIT_SECONDS,
                )
        except Exception as error:
            log.warning("deleting %d published outbox rows failed: %s", len(ids), described(error))
            return False
        return True

    async def _submit(
        self, rows: Sequence[Committed], deliveries: list[asyncio.Future[Any]]
    ) -> list[Committed]:
        """The longest prefix of `rows` that fits one batch per partition, handed to the
        producer in order; each batch's answer goes into `deliveries` as it is handed over."""
        producer = await self._producer_started()
        partitions: dict[str, list[int]] = {}
        batches: dict[TopicPartition, _Batch] = {}
        taken = 0
        try:
            for row in rows:
                message = row.message
                topic = message.topic
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                tp = TopicPartition(topic, self._partitioner(message.key, partitions[topic], []))
                batch = batches.get(tp)
                if batch is None:
                    batch = batches[tp] = _Batch(tp, producer.create_batch(), self._tracing)
                if not batch.add(message):
                    break  # the rest waits for the next round, behind this partition's batch
                taken += 1
            for batch in batches.values():
                deliveries.append(await batch.submit(producer))
        except BaseException as error:
            for batch in batches.values():
                batch.not_sent(error)
            raise
        return list(rows[:taken])

    def _fail_over(self, reason: str) -> None:
        """Leave every row this instance holds to the relay, and its next messages for a
        while: the broker did not take a round, or the service is stopping."""
        if self._held and reason != "stopping":
            log.warning(
                "publishing from memory failed (%s): %d outbox rows left to the relay",
                reason,
                len(self._held),
            )
        self._handed_over.update(self._held)  # the queued rows are among them
        self._queue = []
        self._held = {}
        self.epoch += 1
        if reason != "stopping":
            self.failovers_total += 1
            self._paused_until = time.monotonic() + self._pause.backoff(self._failures)
            self._failures += 1

    async def _hand_over(self) -> None:
        """Mark the rows left to the relay as its own, and wake it. They stay in `_handed_over`
        (so batches keep away from their keys) until the mark has committed; should it fail,
        it is tried again, and meanwhile the relay publishes nothing of their keys after them
        and sweeps them once they are old enough."""
        marking = dict(self._handed_over)
        if not marking:
            return
        try:
            async with self._pool.acquire(timeout=DATABASE_WAIT_SECONDS) as conn:
                await conn.execute(
                    f"""
                    WITH handed AS (
                        UPDATE outbox SET publisher = NULL
                        WHERE id = ANY($1::bigint[]) AND publisher IS NOT NULL RETURNING id
                    )
                    SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM handed LIMIT 1
                    """,
                    sorted(marking),
                    timeout=DATABASE_WAIT_SECONDS,
                )
        except Exception as error:
            log.warning(
                "leaving %d outbox rows to the relay failed (%s); trying again",
                len(marking),
                described(error),
            )
            return
        for outbox_id in marking:
            self._handed_over.pop(outbox_id, None)

    def _retire_producer(self) -> None:
        """Stop the producer in the background; the next round starts a new one. A producer
        that had a batch refused may be stuck: an idempotent one has counted the batch's
        sequence numbers, and every later batch of its partition would be refused as out of
        order. Its stop waits for what it still holds to be answered (at most its request
        timeout) and is never cut short, or its connections would stay open."""
        producer, self._producer = self._producer, None
        if producer is not None:
            self._track(asyncio.ensure_future(producer.stop()))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_retrieved)


def _pair(row: Committed) -> Pair:
    return row.message.topic, row.message.key


def _never(topic: str) -> bool:
    return False


def _always(topic: str) -> bool:
    return True


class _Batch:
    """One partition's messages of a round, in order, with the spans of the traced ones."""

    def __init__(self, tp: TopicPartition, builder: Any, tracing: Tracing | None) -> None:
        self.tp = tp
        self._builder = builder
        self._tracing = tracing
        self._spans: list[tuple[Any, int]] = []
        self._submitted = False

    def add(self, message: OutboxMessage) -> bool:
        """Whether the batch took the message (an empty one takes any; the broker judges its
        size). A null value is a tombstone."""
        headers = list(message.headers)
        span = None
        if self._tracing is not None:
            span, headers = self._tracing.sending(
                self.tp.topic, headers, tombstone=message.value is None
            )
        appended = self._builder.append(
            timestamp=None, key=message.key, value=message.value, headers=headers
        )
        if appended is None:
            if span is not None:
                span.end()  # not sent yet: the next round sends it under a span of its own
            return False
        if span is not None:
            self._spans.append((span, appended.offset))
        return True

    async def submit(self, producer: AIOKafkaProducer) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = await producer.send_batch(
            self._builder, self.tp.topic, partition=self.tp.partition
        )
        self._submitted = True
        # Retrieved even when the round stops waiting for it (asyncio logs what is not).
        delivery.add_done_callback(_retrieved)
        if self._tracing is not None:
            for span, relative in self._spans:
                self._tracing.sent(span, _each(delivery, relative))
        return delivery

    def not_sent(self, error: BaseException) -> None:
        if not self._submitted:
            for span, _ in self._spans:
                self._tracing_not_sent(span, error)

    def _tracing_not_sent(self, span: Any, error: BaseException) -> None:
        if self._tracing is not None:
            self._tracing.not_sent(span, error)


def _retrieved(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


def _each(delivery: asyncio.Future[Any], relative: int) -> asyncio.Future[Any]:
    """The answer for one message of a batch: the batch's, at the message's own offset."""
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def answered(done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            answer.cancel()
        elif (error := done.exception()) is not None:
            answer.set_exception(error)
        else:
            batch: RecordMetadata = done.result()
            answer.set_result(batch._replace(offset=batch.offset + relative))

    delivery.add_done_callback(answered)
    return answer
