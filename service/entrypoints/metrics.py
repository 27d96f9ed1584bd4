"""Prometheus metrics of the running service, served on GET /metrics.

Names follow Prometheus conventions (base units, `_total` counters). Labels are bounded: a
command type the contract does not know counts as `unknown`, so a producer writing garbage
cannot create series without end, and gate refusals are counted by the gate's own reasons.
Counting is per batch, not per command, to stay cheap.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from importlib import metadata
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import contracts
from service.app.auth import Refusal
from service.app.family import Family
from service.app.observer import RetryCause, Settled
from service.app.ports import Outcome

PREFIX = "order_service"
UNKNOWN_TYPE = "unknown"


class DeadLetterReason(StrEnum):
    UNREADABLE = "unreadable"
    """No command_id could be read: nobody can be answered."""
    INVALID = "invalid"
    """Refused at the edge; its sender got an invalid_request rejection."""
    UNPROCESSABLE = "unprocessable"
    """Parked after failing for an unexpected reason; its sender got processing_failed."""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def command_types(family: Family[Any]) -> frozenset[str]:
    """Every command type of the family's contract (the union's discriminator values)."""
    schema = family.commands.adapter.json_schema()
    return frozenset(schema["discriminator"]["mapping"])


class ServiceMetrics:
    """The service's metrics in their own registry; also the processors' observer."""

    def __init__(self, families: Sequence[Family[Any]]) -> None:
        self.registry = CollectorRegistry()
        self._types = {family.name: command_types(family) for family in families}
        r = self.registry
        # The standard process_*, python_* and python_gc_* series every Prometheus dashboard
        # and alert expects, in this registry too (it is ours, so tests get fresh counters).
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(standard)
        Info(
            f"{PREFIX}_build", "The running build: service and contract versions.", registry=r
        ).info({"version": _version("order-lifecycle-service"), "contract": contracts.__version__})
        self.commands = Counter(
            f"{PREFIX}_commands",
            "Messages answered, by family, command type and outcome (accepted, rejected,"
            " dead_lettered, parked, duplicate).",
            ["family", "type", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Messages sent to a dead-letter topic, by family and reason (unreadable, invalid,"
            " unprocessable).",
            ["family", "reason"],
            registry=r,
        )
        self.retries = Counter(
            f"{PREFIX}_retries",
            "Batches or commands tried again, by family and cause.",
            ["family", "cause"],
            registry=r,
        )
        self.gate_refusals = Counter(
            f"{PREFIX}_gate_refusals",
            "Messages the token gate refused, by family and reason (no_token, invalid_token,"
            " wrong_tenant, role_forbidden, ...).",
            ["family", "reason"],
            registry=r,
        )

        def per_family(name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, documentation, ["family"], buckets=buckets, registry=r)

        self.batch_size = per_family(
            f"{PREFIX}_batch_size_messages",
            "Messages per batch decided in one transaction.",
            (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
        )
        self.batch_duration = per_family(
            f"{PREFIX}_batch_duration_seconds",
            "From a batch's arrival to its transaction's commit, retries included.",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.command_age = per_family(
            f"{PREFIX}_command_age_seconds",
            "How old a command was when its outcome committed (now minus its Kafka timestamp).",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag_messages",
            "Messages on a commands partition not yet decided, as of the last batch from it.",
            ["topic", "partition"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            f"{PREFIX}_outbox_pending_messages",
            "Outcome messages committed but not yet published.",
            registry=r,
        )
        self.outbox_oldest = Gauge(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest outcome message not yet published (0 when none).",
            registry=r,
        )
        for family, types in self._types.items():
            for command_type in (*types, UNKNOWN_TYPE):
                for outcome in Outcome:
                    self.commands.labels(family, command_type, outcome.value)
            for reason in DeadLetterReason:
                self.dead_letters.labels(family, reason.value)
            for cause in RetryCause:
                self.retries.labels(family, cause.value)
            for refusal in Refusal:
                self.gate_refusals.labels(family, refusal.value)
            self.batch_size.labels(family)
            self.batch_duration.labels(family)
            self.command_age.labels(family)

    def batch_settled(self, family: str, settled: Sequence[Settled], seconds: float) -> None:
        known = self._types.get(family, frozenset())
        outcomes = Tally(
            (s.command_type if s.command_type in known else UNKNOWN_TYPE, s.outcome)
            for s in settled
        )
        for (command_type, outcome), n in outcomes.items():
            self.commands.labels(family, command_type, outcome.value).inc(n)
        reasons = Tally(reason for s in settled if (reason := _dead_letter_reason(s)))
        for reason, n in reasons.items():
            self.dead_letters.labels(family, reason.value).inc(n)
        self.batch_size.labels(family).observe(len(settled))
        self.batch_duration.labels(family).observe(seconds)
        now_ms = time.time() * 1000
        age = self.command_age.labels(family)
        for s in settled:
            age.observe(max(0.0, (now_ms - s.timestamp_ms) / 1000))

    def retried(self, family: str, cause: RetryCause) -> None:
        self.retries.labels(family, cause.value).inc()

    def refused(self, family: str, reason: Refusal) -> None:
        self.gate_refusals.labels(family, reason.value).inc()

    def lag(self, topic: str, partition: int, messages: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(messages)

    def forget_lag(self, topic: str, partition: int) -> None:
        """A partition given to another instance: its lag is no longer this one's to report
        (a series left behind would keep an alert firing for a partition nobody here owns)."""
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))

    def outbox(self, pending: int, oldest_seconds: float) -> None:
        self.outbox_pending.set(pending)
        self.outbox_oldest.set(oldest_seconds)

    def watch_relay(self, status: Callable[[], Mapping[str, Any]]) -> None:
        """Report the relay child's own counters, read from its status at each scrape."""
        self.registry.register(_RelayCollector(status))

    def watch_publisher(self, status: Callable[[], Mapping[str, Any]]) -> None:
        """Report the publisher's counters, read at each scrape."""
        self.registry.register(_PublisherCollector(status))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def relay_metrics(status: Callable[[], Mapping[str, Any]]) -> Callable[[], bytes]:
    """The metrics of `order-service relay` run on its own: the relay's series alone, named
    as the service names them, so one dashboard reads both process models."""
    registry = CollectorRegistry()
    registry.register(_RelayCollector(status))
    return lambda: generate_latest(registry)


def _dead_letter_reason(settled: Settled) -> DeadLetterReason | None:
    if settled.outcome is Outcome.PARKED:
        return DeadLetterReason.UNPROCESSABLE
    if settled.outcome is Outcome.DEAD_LETTERED:
        if settled.command_id_readable:
            return DeadLetterReason.INVALID
        return DeadLetterReason.UNREADABLE
    return None


class _RelayCollector(Collector):
    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        status = self._status()
        yield CounterMetricFamily(
            f"{PREFIX}_relay_published_messages",
            "Outbox messages the relay published (counts from 0 when the relay restarts).",
            value=status.get("published_total", 0),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_relay_replies_dropped",
            "Replies given up because the topic their sender named would not take them.",
            value=status.get("replies_dropped", 0),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_relay_errors",
            "Relay cycles interrupted by an error (database or broker), then retried.",
            value=status.get("errors_total", 0),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_relay_restarts",
            "Times the relay process died and was started again.",
            value=status.get("restarts", 0),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_relay_up",
            "1 while the relay process runs and completes cycles.",
            value=1 if status.get("alive") else 0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_relay_leader",
            "1 while this service's relay holds the publishing lock (one relay per database).",
            value=1 if status.get("leader") else 0,
        )


class _PublisherCollector(Collector):
    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        status = self._status()
        yield CounterMetricFamily(
            f"{PREFIX}_published_from_memory_messages",
            "Outcomes this instance published right after their commit, without the relay.",
            value=status.get("published_total", 0),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_publisher_failovers",
            "Times a send failed and this instance left its unpublished outcomes to the relay.",
            value=status.get("failovers_total", 0),
        )
