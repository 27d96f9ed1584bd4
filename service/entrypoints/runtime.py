"""The running service's resources, started and stopped in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from contracts.topics import INVENTORY_MOVEMENTS, all_topics
from service.adapters.database import create_pool, migrate
from service.adapters.kafka import ensure_topics
from service.adapters.store import PostgresStore
from service.app.family import BatchDecider, Family
from service.app.orders.handler import OrderDecider, order_family
from service.app.processor import CommandProcessor, RetryPolicy
from service.app.purchase_orders.handler import PurchaseOrderDecider, purchase_order_family
from service.entrypoints.relay_process import RelayProcess
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ConsumerStatus:
    processed_total: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)
    """First message of each batch being decided -> when its deciding started (monotonic)."""
    in_flight_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a batch is decided and its offsets committed; a revoke waits for it."""

    @contextlib.asynccontextmanager
    async def deciding(self, source: str) -> AsyncIterator[None]:
        async with self.in_flight_lock:
            self.in_flight[source] = time.monotonic()
            try:
                yield
            finally:
                del self.in_flight[source]


@dataclass
class Runtime:
    settings: Settings
    deciders: tuple[BatchDecider[Any], ...] = field(init=False)
    consumer: ConsumerStatus = field(default_factory=ConsumerStatus)
    _pool: asyncpg.Pool | None = None
    _relay: RelayProcess | None = None
    _relay_task: asyncio.Task[None] | None = None
    _relay_dir: Path | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _processors: dict[str, CommandProcessor[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        prefix = self.settings.topic_prefix
        movements = f"{prefix}{INVENTORY_MOVEMENTS}"
        self.deciders = (
            PurchaseOrderDecider(purchase_order_family(prefix), movements),
            OrderDecider(order_family(prefix), movements),
        )

    @property
    def families(self) -> tuple[Family[Any], ...]:
        return tuple(decider.family for decider in self.deciders)

    def processor(self, commands_topic: str) -> CommandProcessor[Any]:
        """The processor of the family whose commands arrive on `commands_topic`."""
        assert self._processors, "the runtime is not started"
        return self._processors[commands_topic]

    async def start(self) -> None:
        s = self.settings
        master = s.load_master_key()  # refuse to start without one, before touching anything
        await migrate(s.database_url)
        await ensure_topics(
            s.kafka_bootstrap_servers, all_topics(s.topic_prefix), s.topic_partitions
        )
        self._pool = await create_pool(s.database_url, s.database_pool_size)
        store = PostgresStore(self._pool, master, s.dead_letter_retention_hours)
        retry = RetryPolicy(
            max_backoff_seconds=s.retry_max_backoff_seconds,
            unexpected_failure_attempts=s.unexpected_failure_attempts,
        )
        self._processors = {
            decider.family.topics.commands: CommandProcessor(
                store, decider, max_command_bytes=s.max_command_bytes, retry=retry
            )
            for decider in self.deciders
        }
        self._relay_dir = Path(tempfile.mkdtemp(prefix="order-service-relay-"))
        self._relay = RelayProcess(s, self._relay_dir / "status.json")
        self._relay.start()
        self._relay_task = asyncio.create_task(self._relay.supervise(self._stop), name="relay")

    def stop_processing(self) -> None:
        for processor in self._processors.values():
            processor.stop()

    async def stop(self) -> None:
        self.stop_processing()
        self._stop.set()
        if self._relay_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._relay_task, 10)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.stop)
        if self._relay_dir is not None:
            shutil.rmtree(self._relay_dir, ignore_errors=True)
        if self._pool is not None:
            await self._pool.close()

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service does its work: database answers, relay cycles, consumer not stuck."""
        checks: dict[str, Any] = {}
        healthy = True
        try:
            assert self._pool is not None
            async with self._pool.acquire(timeout=2) as conn:
                row = await conn.fetchrow(
                    "SELECT count(*) AS pending,"
                    " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
                    " FROM outbox"
                )
            checks["database"] = "ok"
            checks["outbox_unpublished"] = row["pending"]
            checks["outbox_oldest_unpublished_seconds"] = round(float(row["oldest"]), 3)
        except Exception as error:
            healthy = False
            checks["database"] = f"error: {type(error).__name__}"
        relay = self._relay.status() if self._relay is not None else {"alive": False}
        healthy = healthy and relay["alive"]
        checks["relay"] = relay
        in_flight = self.consumer.in_flight.values()
        stuck_for = time.monotonic() - min(in_flight) if in_flight else 0.0
        unanswered = {
            source: error
            for processor in self._processors.values()
            for source, error in processor.unanswered.items()
        }
        # A message that cannot even be parked holds its partition: someone must look.
        healthy = healthy and not unanswered
        checks["consumer"] = {
            "processed_total": self.consumer.processed_total,
            "in_flight_seconds": round(stuck_for, 3),
            "unanswered": unanswered,
        }
        return healthy, checks
