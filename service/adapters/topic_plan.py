"""What each topic the service creates should look like, and how an existing one differs.

Pure: the plan is computed from the settings and the number of brokers the cluster reports;
`service.adapters.kafka.ensure_topics` creates what is missing and describes what exists.
Topics are of four kinds, each with its own retention and cleanup policy:

- commands: what senders write; kept as long as the inbox remembers command ids, so that no
  redelivery (a consumer group rewound, a replay) can outlive its deduplication;
- outcomes: events, rejections, previews, inventory movements; what downstream systems read;
- dead letters: commands that could not be decided, sealed, kept for an operator to replay;
- state: each document's latest state, compacted (Kafka keeps each key's latest record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field
from enum import StrEnum

from contracts.topics import DocumentTopics
from service.domain.values import frozen

PRODUCTION_REPLICATION_FACTOR = 3
"""Replicas of every topic on a cluster of three brokers or more: one broker may be lost (and
one more be down for maintenance) without losing an acknowledged message."""

FOREVER = -1
"""A retention that never deletes (Kafka's `retention.ms=-1`)."""

SHORTEST_RETENTION_HOURS = 1 / 60

COMMANDS_RETENTION_HOURS = 24.0
"""How long commands topics keep messages unless set: they hold what senders wrote, personal
data in plaintext included, which an erasure cannot reach; a day covers any redelivery."""

COMMANDS_SEGMENTS_PER_RETENTION = 4
"""Kafka deletes a segment only once it has rolled and its newest message has aged out: with a
segment rolled every quarter of the retention, a command is kept at most 1.25 times it."""


def longest_kept(retention_hours: float) -> float:
    """The longest a commands topic keeps a message, with its segment roll."""
    return retention_hours * (1 + 1 / COMMANDS_SEGMENTS_PER_RETENTION)


def default_commands_retention(inbox_retention_hours: float) -> float:
    """A day, or less where the inbox forgets command ids sooner."""
    return min(COMMANDS_RETENTION_HOURS, inbox_retention_hours / longest_kept(1.0))


class TopicKind(StrEnum):
    COMMANDS = "commands"
    OUTCOMES = "outcomes"
    DEAD_LETTERS = "dead_letters"
    STATE = "state"


@frozen
class TopicSpec:
    """How a topic should be: partitions, replicas and the topic configs the service sets."""

    kind: TopicKind
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@frozen
class FoundTopic:
    """How an existing topic is, as the cluster describes it. `configs` holds what the broker
    reported; a config it did not report (some brokers list only those set on the topic) is
    absent."""

    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@frozen
class TopicSettings:
    """The deployment's topic settings (TOPIC_* in service.settings). `None` for replication
    factor or min.insync.replicas means: from the cluster's size."""

    partitions: int
    replication_factor: int | None
    min_insync_replicas: int | None
    retention_hours: Mapping[TopicKind, float]
    """Per kind but state; FOREVER keeps messages for ever."""

    def replication_for(self, brokers: int) -> tuple[int, int]:
        """The replication factor and min.insync.replicas for a cluster of `brokers`: as set, or
        three replicas of which two must have a write (one where the cluster is smaller)."""
        replicas = self.replication_factor or min(PRODUCTION_REPLICATION_FACTOR, brokers)
        in_sync = self.min_insync_replicas or (2 if replicas >= 3 else 1)
        return replicas, in_sync


class TopicPlanError(ValueError):
    """The settings cannot be met by the cluster (more replicas than brokers, for example)."""


def kinds_of(topics: DocumentTopics) -> dict[str, TopicKind]:
    """Each topic of a family with its kind."""
    return {
        topics.commands: TopicKind.COMMANDS,
        topics.events: TopicKind.OUTCOMES,
        topics.rejections: TopicKind.OUTCOMES,
        topics.previews: TopicKind.OUTCOMES,
        topics.dead_letters: TopicKind.DEAD_LETTERS,
        topics.state: TopicKind.STATE,
    }


def plan(
    topics: Mapping[str, TopicKind], settings: TopicSettings, brokers: int
) -> dict[str, TopicSpec]:
    """The spec of every topic, for a cluster of `brokers` brokers."""
    if brokers < 1:
        raise TopicPlanError("the Kafka cluster reports no broker")
    replicas, in_sync = settings.replication_for(brokers)
    if replicas > brokers:
        raise TopicPlanError(
            f"TOPIC_REPLICATION_FACTOR={replicas} but the cluster reports {brokers} broker(s)"
        )
    if in_sync > replicas:
        raise TopicPlanError(
            f"TOPIC_MIN_INSYNC_REPLICAS={in_sync} is more than the replication factor"
            f" {replicas}: no write with acks=all could ever succeed"
        )
    return {
        name: TopicSpec(kind, settings.partitions, replicas, _configs(kind, settings, in_sync))
        for name, kind in topics.items()
    }


def _configs(kind: TopicKind, settings: TopicSettings, in_sync: int) -> dict[str, str]:
    configs = {"min.insync.replicas": str(in_sync)}
    if kind is TopicKind.STATE:
        # Compacted, not deleted by age: a document that stopped changing keeps its state.
        configs["cleanup.policy"] = "compact"
        return configs
    hours = settings.retention_hours[kind]
    configs["cleanup.policy"] = "delete"
    retention_ms = FOREVER if hours == FOREVER else round(hours * 3_600_000)
    configs["retention.ms"] = str(retention_ms)
    if kind is TopicKind.COMMANDS and retention_ms != FOREVER:
        # Age counted from when the broker appended a command, not from a timestamp its sender
        # chose (one far in the future would keep its segment, and every command in it).
        configs["message.timestamp.type"] = "LogAppendTime"
        configs["segment.ms"] = str(max(60_000, retention_ms // COMMANDS_SEGMENTS_PER_RETENTION))
    return configs


def differences(wanted: TopicSpec, found: FoundTopic) -> list[str]:
    """How an existing topic differs from its spec, one sentence each; empty when it does not.
    The service reports these and changes nothing: altering a topic is an operator's call."""
    found_differences = []
    if found.partitions != wanted.partitions:
        found_differences.append(f"{found.partitions} partitions, settings say {wanted.partitions}")
    if found.replication_factor != wanted.replication_factor:
        found_differences.append(
            f"replication factor {found.replication_factor},"
            f" settings say {wanted.replication_factor}"
        )
    for name, value in wanted.configs.items():
        actual = found.configs.get(name)
        if actual is None:
            found_differences.append(f"{name} not set (the broker's default), settings say {value}")
        elif not _same(name, actual, value):
            found_differences.append(f"{name}={actual}, settings say {value}")
    return found_differences


def _same(name: str, actual: str, wanted: str) -> bool:
    if name == "cleanup.policy":
        return set(actual.replace(" ", "").split(",")) == set(wanted.split(","))
    return actual.strip() == wanted


def of_families(families: Iterable[DocumentTopics], movements: str) -> dict[str, TopicKind]:
    """Every topic the service creates: each family's, and the inventory movements topic."""
    topics: dict[str, TopicKind] = {}
    for family in families:
        topics.update(kinds_of(family))
    topics[movements] = TopicKind.OUTCOMES
    return topics
