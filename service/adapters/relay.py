"""The outbox relay: publishes committed outbox rows to Kafka in id order, then deletes them.

It publishes the rows left to it, and sweeps those an instance meant to publish from memory
(service/adapters/direct_publisher.py) once they are older than `sweep_after_seconds`: that
instance died, or cannot reach the broker.

One relay is active per database at a time (a session advisory lock elects it), so per-key order
is never broken by two publishers racing. It never tracks a high-water mark: it always reads every
unpublished row in id order, so a row whose transaction committed late is still picked up.
It wakes on NOTIFY and polls as a fallback; it retries until the broker takes each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from service.adapters.database import OUTBOX_CHANNEL, RELAY_LEADER_LOCK_ID
from service.adapters.headers import decode_headers
from service.app.retry import Retrier, RetryPolicy, described
from service.errors import ProcessingAbandonedError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from service.adapters.tracing import Tracing

log = logging.getLogger(__name__)

CLEANUP_INTERVAL_SECONDS = 60.0
CLEANUP_CHUNK = 5000
REPLY_ATTEMPTS = 3
TOPIC_REFUSES = (
    UnknownTopicOrPartitionError,
    TopicAuthorizationFailedError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    PolicyViolationError,
)
"""Errors that say the topic will not take the message, however often it is sent."""


def _failed(error: Exception) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


@dataclass
class RelayStatus:
    """What the health endpoint reports about the relay."""

    leader: bool = False
    last_cycle_at: float = field(default_factory=time.monotonic)
    published_total: int = 0
    errors_total: int = 0
    last_error: str | None = None
    replies_dropped: int = 0
    """Replies that could not be delivered to the topic their sender named, and were given up
    so that they never hold up the outbox behind them."""


class OutboxRelay:
    def __init__(
        self,
        database_url: str,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_interval_seconds: float = 1.0,
        inbox_retention_hours: float = 168.0,
        max_backoff_seconds: float = 5.0,
        reply_prefixes: tuple[str, ...] = (),
        tracing: Tracing | None = None,
        sweep_after_seconds: float = 10.0,
    ) -> None:
        self._database_url = database_url
        self._sweep_after = sweep_after_seconds
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval = poll_interval_seconds
        self._inbox_retention_hours = inbox_retention_hours
        self._max_backoff = max_backoff_seconds
        self._tracing = tracing
        self._wake = asyncio.Event()
        self.status = RelayStatus()
        self._reply_prefixes = reply_prefixes
        self._reply_failures: dict[int, int] = {}
        """Outbox id -> failed attempts, for replies (only they are ever given up)."""

    async def run(self, stop: asyncio.Event) -> None:
        retrier = Retrier(
            RetryPolicy(first_backoff_seconds=0.1, max_backoff_seconds=self._max_backoff), stop
        )
        attempt = 0
        while not stop.is_set():
            try:
                await self._lead(stop)
                attempt = 0
            except Exception as error:  # the relay must outlive any failure; it retries
                self.status.leader = False
                self.status.errors_total += 1
                self.status.last_error = described(error)
                # Drawn once: the pause is random, and the log should tell the one waited.
                pause = retrier.policy.backoff(attempt)
                log.warning(
                    "relay interrupted, retrying in %.1fs: %s", pause, self.status.last_error
                )
                try:
                    await retrier.wait(pause)
                except ProcessingAbandonedError:
                    return
                attempt += 1

    async def _lead(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._database_url)
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LEADER_LOCK_ID):
                    break
                self.status.last_cycle_at = time.monotonic()
                await self._sleep(stop, self._poll_interval)
            else:
                return
            self.status.leader = True
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            last_cleanup = 0.0
            while not stop.is_set():
                self._wake.clear()
                published = await self.publish_pending(conn)
                self.status.last_cycle_at = time.monotonic()
                self.status.last_error = None
                if time.monotonic() - last_cleanup > CLEANUP_INTERVAL_SECONDS:
                    more = await delete_expired(conn, self._inbox_retention_hours)
                    # With more to delete, come back on the next cycle rather than stall here.
                    last_cleanup = 0.0 if more else time.monotonic()
                if published < self._batch_size:
                    await self._sleep(stop, self._poll_interval, wake=self._wake)
        finally:
            self.status.leader = False
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of unpublished rows in id order; returns how many were published."""
        # Rows left to it, and rows meant to be published from memory that are old enough to
        # sweep; never a row behind a younger one of its topic and key that an instance is
        # still publishing: it would overtake it.
        rows = await conn.fetch(
            """
            WITH young AS (SELECT clock_timestamp() - $2 * interval '1 second' AS since)
            SELECT o.id, o.topic, o.message_key, o.headers, o.payload FROM outbox o, young
            WHERE (o.publisher IS NULL OR o.created_at < young.since)
              AND NOT EXISTS (
                SELECT FROM outbox p
                WHERE p.message_key = o.message_key AND p.topic = o.topic AND p.id < o.id
                  AND p.publisher IS NOT NULL AND p.created_at >= young.since)
            ORDER BY o.id LIMIT $1
            """,
            self._batch_size,
            self._sweep_after,
        )
        if not rows:
            return 0
        deliveries: list[asyncio.Future[object]] = []
        tracing = self._tracing
        for row in rows:
            headers = decode_headers(row["headers"])
            span: Span | None = None
            if tracing is not None:
                span, headers = tracing.sending(
                    row["topic"], headers, tombstone=row["payload"] is None
                )
            try:
                # A null payload is a state topic's tombstone: a record without a value.
                delivery = await self._producer.send(
                    row["topic"], value=row["payload"], key=row["message_key"], headers=headers
                )
            except Exception as error:
                if tracing is not None and span is not None:
                    tracing.not_sent(span, error)
                if not self._is_reply(row["topic"]):
                    raise
                delivery = _failed(error)
            except BaseException as error:  # cancelled while the producer's buffer was full
                if tracing is not None and span is not None:
                    tracing.not_sent(span, error)
                raise
            else:
                if tracing is not None and span is not None:
                    # Ends the span when the broker answers, whether or not this cycle gets as
                    # far as awaiting the answer.
                    tracing.sent(span, delivery)
            deliveries.append(delivery)
        done: list[int] = []
        try:
            for row, delivery in zip(rows, deliveries, strict=True):
                try:
                    await delivery
                except Exception as error:
                    if not self._gives_up(row["id"], row["topic"], error):
                        raise
                done.append(row["id"])
        finally:
            # Delete what the broker confirmed, even when a later send failed; the rest is
            # published again on the next cycle, in order.
            if done:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", done)
                self.status.published_total += len(done)
        return len(done)

    def _is_reply(self, topic: str) -> bool:
        return topic.startswith(self._reply_prefixes) if self._reply_prefixes else False

    def _gives_up(self, outbox_id: int, topic: str, error: Exception) -> bool:
        """Whether a failed row is given up: only a reply, at once when its topic cannot take
        it (gone, forbidden, too small) and else after REPLY_ATTEMPTS cycles. A reply goes to a
        topic its sender chose, so its failure must never hold up the events behind it; the
        sender gets the outcome again by re-sending the command."""
        if not self._is_reply(topic):
            return False
        failures = self._reply_failures.get(outbox_id, 0) + 1
        if not isinstance(error, TOPIC_REFUSES) and failures < REPLY_ATTEMPTS:
            self._reply_failures[outbox_id] = failures
            return False
        self._reply_failures.pop(outbox_id, None)
        self.status.replies_dropped += 1
        log.warning("gave up a reply to %s that cannot be delivered: %s", topic, described(error))
        return True

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    @staticmethod
    async def _sleep(
        stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None
    ) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


async def delete_expired(conn: asyncpg.Connection, inbox_retention_hours: float) -> bool:
    """Inbox keys and token uses past the deduplication window and dead-letter keys past their
    retention, at most CLEANUP_CHUNK rows of each at a time so that publishing never waits long;
    returns whether more is left to delete."""
    window = "{} < now() - $1::float8 * interval '1 hour'"
    deleted = [
        await _delete_chunk(conn, "inbox", window.format("received_at"), inbox_retention_hours),
        await _delete_chunk(
            conn, "inbox_reuse", window.format("received_at"), inbox_retention_hours
        ),
        await _delete_chunk(conn, "token_uses", window.format("used_at"), inbox_retention_hours),
        await _delete_chunk(conn, "dead_letter_keys", "expires_at < now()"),
    ]
    return max(deleted) == CLEANUP_CHUNK


async def _delete_chunk(conn: asyncpg.Connection, table: str, expired: str, *args: object) -> int:
    status: str = await conn.execute(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE {expired} LIMIT {CLEANUP_CHUNK}))",
        *args,
    )
    log.debug("cleanup: %s from %s", status, table)
    return int(status.rsplit(" ", 1)[-1])
