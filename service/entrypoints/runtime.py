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
from typing import TYPE_CHECKING, Any

import asyncpg

from contracts.topics import INVENTORY_MOVEMENTS
from service.adapters import views
from service.adapters.crypto import Keyring
from service.adapters.database import create_pool
from service.adapters.dead_letters import letter_signer
from service.adapters.dedicated import can_store
from service.adapters.direct_publisher import DirectPublisher
from service.adapters.document_cache import CommittedDocuments
from service.adapters.kafka import (
    PUBLISHER_BATCH_BYTES,
    TopicCheck,
    ensure_topics,
    make_producer,
)
from service.adapters.random_ids import name_based_uuid, random_uuid
from service.adapters.topic_directory import KafkaTopicDirectory
from service.adapters.topic_plan import of_families
from service.adapters.tracing_config import tracing_from
from service.adapters.unit_of_work import PostgresStore
from service.app.auth import Gate, TokenVerifier
from service.app.family import Family
from service.app.kernel import DocumentDecider
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.replies import ReplyPolicy
from service.app.retry import RetryPolicy
from service.entrypoints.families import registered
from service.entrypoints.metrics import ServiceMetrics
from service.entrypoints.relay_process import RelayProcess
from service.entrypoints.schema import prepare_schema
from service.errors import ConfigurationError
from service.settings import Settings

if TYPE_CHECKING:
    from service.adapters.tracing import Tracing

log = logging.getLogger(__name__)

SIGNING_KEYS_REFRESH_SECONDS = 10.0
PUBLISHER_STOP_SECONDS = 20.0


@dataclass
class ConsumerStatus:
    processed_total: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)
    """First message of each batch being decided -> when its deciding started (monotonic)."""
    in_flight_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a batch is decided and its offsets committed; a revoke waits for it."""
    assigned: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    """Per family, the (topic, partition) pairs its consumer owns now."""
    joined: set[str] = field(default_factory=set)
    """The families whose consumer is a member of its group now (it completed a join and is
    not rebalancing), whether or not it was given partitions: with more instances than
    partitions some own none, and are as ready as the others to take over."""

    def stuck_for(self) -> tuple[float, str | None]:
        """How long the oldest batch in flight has been deciding, and where it starts."""
        if not self.in_flight:
            return 0.0, None
        source, started = min(self.in_flight.items(), key=lambda item: item[1])
        return time.monotonic() - started, source

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
    deciders: tuple[DocumentDecider[Any], ...] = field(init=False)
    metrics: ServiceMetrics | None = field(init=False)
    tracing: Tracing | None = field(init=False)
    consumer: ConsumerStatus = field(default_factory=ConsumerStatus)
    _pool: asyncpg.Pool | None = None
    _relay: RelayProcess | None = None
    _relay_task: asyncio.Task[None] | None = None
    _relay_dir: Path | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _processors: dict[str, CommandProcessor[Any]] = field(default_factory=dict)
    _verifier: TokenVerifier | None = None
    _master_keys: Keyring | None = None
    _signing_task: asyncio.Task[None] | None = None
    _reply_topics: KafkaTopicDirectory | None = None
    _publisher: DirectPublisher | None = None
    _publisher_task: asyncio.Task[None] | None = None
    _publisher_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _documents: CommittedDocuments | None = None
    topics: TopicCheck | None = None
    """The topics as found at start: created, or differing from the settings."""

    def __post_init__(self) -> None:
        prefix = self.settings.topic_prefix
        movements = f"{prefix}{INVENTORY_MOVEMENTS}"
        self.deciders = tuple(
            DocumentDecider(family, movements, random_uuid, name_based_uuid)
            for family in registered(self.settings)
        )
        self.metrics = ServiceMetrics(self.families) if self.settings.metrics_enabled else None
        self.tracing = tracing_from()

    @property
    def families(self) -> tuple[Family[Any], ...]:
        return tuple(decider.family for decider in self.deciders)

    def processor(self, commands_topic: str) -> CommandProcessor[Any]:
        """The processor of the family whose commands arrive on `commands_topic`."""
        assert self._processors, "the runtime is not started"
        return self._processors[commands_topic]

    async def start(self) -> None:
        s = self.settings
        # Refuse to start without a master key, with unusable token keys, or taking commands at
        # their word by accident, before anything.
        s.check_auth_mode()
        master = s.load_master_key()
        self._verifier = verifier = s.token_verifier()
        if s.auth_mode.believes_claims:
            log.warning(
                "AUTH_MODE=%s: %s taken at their word for who sent them"
                " (AUTH_ALLOW_CLAIMED_ACTORS=true); their events say verified=false",
                s.auth_mode.value,
                "commands without a token are" if verifier is not None else "all commands are",
            )
        unstorable = [f.name for f in self.families if not can_store(f.kind)]
        if unstorable:
            raise ConfigurationError(
                f"families {', '.join(unstorable)} have neither a codec nor a store of their own"
            )
        await prepare_schema(s)
        movements = f"{s.topic_prefix}{INVENTORY_MOVEMENTS}"
        topics = [t for family in self.families for t in family.topics.all()] + [movements]
        replies = ReplyPolicy(
            tuple(f"{s.topic_prefix}{prefix}" for prefix in s.reply_topic_prefixes),
            per_tenant=s.reply_topics_per_tenant,
        )
        replies.check(topics)
        self._reply_topics = KafkaTopicDirectory(s.kafka_connection())
        self.topics = await ensure_topics(
            s.kafka_connection(),
            of_families((family.topics for family in self.families), movements),
            s.topics(),
            replication_set=s.topic_replication_factor is not None,
        )
        self._pool = await create_pool(s.database_url, s.database_pool_size)
        if s.publish_from_memory:
            self._start_publisher(replies.prefixes)
        self._documents = CommittedDocuments(int(s.document_cache_mib * 2**20))
        store = PostgresStore(
            self._pool,
            master,
            s.dead_letter_retention_hours,
            publisher=self._publisher,
            documents=self._documents,
        )
        async with self._pool.acquire() as conn:
            signer = await letter_signer(conn, master)
        self._master_keys = master
        self._signing_task = asyncio.create_task(
            self._refresh_signing_keys(signer, master), name="signing-keys"
        )
        retry = RetryPolicy(
            max_backoff_seconds=s.retry_max_backoff_seconds,
            unexpected_failure_attempts=s.unexpected_failure_attempts,
        )
        self._processors = {
            decider.family.topics.commands: CommandProcessor(
                store,
                decider,
                max_command_bytes=s.max_command_bytes,
                retry=retry,
                observer=self.metrics,
                gate=Gate(s.auth_mode, verifier, decider.family.commands),
                signer=signer,
                preview_limit=s.preview_max_per_batch,
                replies=replies,
                topics=self._reply_topics,
            )
            for decider in self.deciders
        }
        if s.relay_in_process:
            self._relay_dir = Path(tempfile.mkdtemp(prefix="order-service-relay-"))
            self._relay = RelayProcess(s, self._relay_dir / "status.json")
            self._relay.start()
            self._relay_task = asyncio.create_task(self._relay.supervise(self._stop), name="relay")
            if self.metrics is not None:
                self.metrics.watch_relay(self.relay_status)

    def _start_publisher(self, reply_prefixes: tuple[str, ...]) -> None:
        s = self.settings
        assert self._pool is not None
        connection = s.kafka_connection()
        self._publisher = publisher = DirectPublisher(
            lambda: make_producer(
                connection,
                idempotent=s.kafka_idempotent_producer,
                role="publisher",
                batch_bytes=PUBLISHER_BATCH_BYTES,
            ),
            self._pool,
            reply_prefixes=reply_prefixes,
            tracing=self.tracing,
        )
        self._publisher_task = asyncio.create_task(
            publisher.run(self._publisher_stop), name="publisher"
        )
        self._publisher_task.add_done_callback(_report_end)
        if self.metrics is not None:
            self.metrics.watch_publisher(publisher.status)

    def publisher_status(self) -> dict[str, Any] | str:
        publisher = self._publisher
        if publisher is None:
            return "off (PUBLISH_FROM_MEMORY=false): the relay publishes everything"
        return publisher.status()

    async def _refresh_signing_keys(self, signer: Signer, keys: Keyring) -> None:
        """A rotation adds a signing key; pick it up (and what it re-wrapped) while running."""
        assert self._pool is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SIGNING_KEYS_REFRESH_SECONDS)
                return
            try:
                async with self._pool.acquire(timeout=5) as conn:
                    signer.adopt(await letter_signer(conn, keys))
            except Exception as error:  # the keys in use stay; try again next time
                log.warning("reading the signing keys failed: %s", type(error).__name__)

    def stop_processing(self) -> None:
        for processor in self._processors.values():
            processor.stop()

    async def stop(self) -> None:
        self.stop_processing()
        # Batches have committed by now: what they left is sent, or left to the relay.
        self._publisher_stop.set()
        if self._publisher_task is not None:
            # Its last round, and its producer answering for what it holds: seconds, or up to
            # the producer's 15 s request timeout when the broker does not answer.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._publisher_task, PUBLISHER_STOP_SECONDS)
        self._stop.set()
        if self._relay_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._relay_task, 10)
        if self._signing_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._signing_task, 5)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.stop)
        if self._relay_dir is not None:
            shutil.rmtree(self._relay_dir, ignore_errors=True)
        if self._pool is not None:
            await self._pool.close()
        if self._reply_topics is not None:
            await self._reply_topics.close()
        if self.tracing is not None:
            self.tracing.shutdown()

    def auth_status(self) -> dict[str, Any]:
        """How commands prove who sent them: the mode, and whether their word is ever taken."""
        s = self.settings
        status: dict[str, Any] = {
            "mode": s.auth_mode.value,
            "claimed_actors": s.auth_mode.believes_claims,
        }
        if self._verifier is not None:
            status["keys"] = self._verifier.problem() or "ok"
        return status

    def relay_status(self) -> dict[str, Any]:
        return self._relay.status() if self._relay is not None else {"alive": False}

    async def outbox_backlog(self) -> tuple[int, float]:
        """Outcome messages not yet published, and how long the oldest has waited (seconds)."""
        assert self._pool is not None, "the runtime is not started"
        async with self._pool.acquire(timeout=2) as conn:
            backlog = await views.outbox_backlog(conn, timeout=2)
        pending, oldest = backlog.pending, round(backlog.oldest_seconds, 3)
        if self.metrics is not None:
            self.metrics.outbox(pending, oldest)
        return pending, oldest

    def unanswered(self) -> dict[str, str]:
        return {
            source: error
            for processor in self._processors.values()
            for source, error in processor.unanswered.items()
        }

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service does its work: database answers, relay cycles, consumer not stuck."""
        checks: dict[str, Any] = {}
        healthy = True
        try:
            pending, oldest = await self.outbox_backlog()
            checks["database"] = "ok"
            checks["outbox_unpublished"] = pending
            checks["outbox_oldest_unpublished_seconds"] = oldest
        except Exception as error:
            healthy = False
            checks["database"] = f"error: {type(error).__name__}"
        if self.settings.relay_in_process:
            relay = self.relay_status()
            healthy = healthy and relay["alive"]
            checks["relay"] = relay
        else:
            checks["relay"] = "external"  # `order-service relay` reports on its own /health
        checks["publisher"] = self.publisher_status()
        if self._documents is not None:
            checks["documents_held"] = self._documents.status()
        stuck_for, _ = self.consumer.stuck_for()
        unanswered = self.unanswered()
        # A message that cannot even be parked holds its partition: someone must look.
        healthy = healthy and not unanswered
        checks["auth"] = self.auth_status()
        if self.topics is not None:
            # Reported, not judged: a restart would not change a topic (an operator does).
            checks["topics"] = self.topics.report()
        checks["consumer"] = {
            "processed_total": self.consumer.processed_total,
            "in_flight_seconds": round(stuck_for, 3),
            "unanswered": unanswered,
            "partitions": {
                family: sorted(f"{topic}/{partition}" for topic, partition in assigned)
                for family, assigned in self.consumer.assigned.items()
            },
            "joined": sorted(self.consumer.joined),
        }
        return healthy, checks

    async def readiness(self) -> list[str]:
        """Why the service should not be counted on now; empty when it is ready: the database
        answers, every family's consumer has joined its group (owning partitions or, with more
        instances than partitions, idle), the relay runs and keeps up, and no batch is stuck."""
        s = self.settings
        reasons: list[str] = []
        try:
            _, oldest = await self.outbox_backlog()
        except Exception as error:
            reasons.append(f"database: unreachable ({type(error).__name__})")
        else:
            if oldest > s.ready_max_outbox_age_seconds:
                reasons.append(
                    f"relay: the oldest unpublished outcome has waited {oldest:.0f} s"
                    f" (limit {s.ready_max_outbox_age_seconds:g} s)"
                )
        if s.relay_in_process and not self.relay_status()["alive"]:
            reasons.append("relay: not running or not completing cycles")
        publisher = self._publisher
        if publisher is not None and not publisher.running and not self._publisher_stop.is_set():
            reasons.append("publisher: stopped; outcomes wait for the relay's sweep (see the log)")
        for family in self.families:
            if family.name not in self.consumer.joined:
                reasons.append(f"consumer {family.name}: not a member of its group (joining)")
        stuck_for, source = self.consumer.stuck_for()
        if stuck_for > s.ready_max_batch_seconds:
            reasons.append(
                f"consumer: the batch from {source} has been deciding for {stuck_for:.0f} s"
                f" (limit {s.ready_max_batch_seconds:g} s): blocked on a lock, or retrying"
            )
        key_problem = self._verifier.problem() if self._verifier is not None else None
        if key_problem is not None:
            reasons.append(f"auth: {key_problem}")
        master_problem = self._master_keys.problem() if self._master_keys is not None else None
        if master_problem is not None:
            reasons.append(f"master keys: {master_problem}")
        reasons += [
            f"consumer: {message} cannot be parked ({failure})"
            for message, failure in self.unanswered().items()
        ]
        return reasons


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("the publisher stopped on an error", exc_info=error)
