"""The topic plan: replicas from the cluster's size, configs per kind, and the differences an
existing topic is reported with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.topics import DocumentTopics
from service.adapters.topic_plan import (
    FOREVER,
    FoundTopic,
    TopicKind,
    TopicPlanError,
    TopicSettings,
    TopicSpec,
    differences,
    kinds_of,
    of_families,
    plan,
)
from service.settings import Settings

HOUR_MS = 3_600_000


def topic_settings(**overrides: object) -> TopicSettings:
    values: dict[str, object] = {
        "partitions": 6,
        "replication_factor": None,
        "min_insync_replicas": None,
        "retention_hours": {
            TopicKind.COMMANDS: 168.0,
            TopicKind.OUTCOMES: 72.0,
            TopicKind.DEAD_LETTERS: FOREVER,
        },
    }
    return TopicSettings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("brokers", "replicas", "in_sync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (9, 3, 2)]
)
def test_replicas_follow_the_cluster_up_to_three_with_two_in_sync(
    brokers: int, replicas: int, in_sync: int
) -> None:
    specs = plan({"a.events": TopicKind.OUTCOMES}, topic_settings(), brokers)
    spec = specs["a.events"]
    assert (spec.replication_factor, spec.configs["min.insync.replicas"]) == (
        replicas,
        str(in_sync),
    )


def test_configured_replication_is_kept_and_checked_against_the_cluster() -> None:
    settings = topic_settings(replication_factor=2, min_insync_replicas=2)
    assert plan({"t": TopicKind.COMMANDS}, settings, 5)["t"].replication_factor == 2
    with pytest.raises(TopicPlanError, match="FACTOR=2 but the cluster reports 1 broker"):
        plan({"t": TopicKind.COMMANDS}, settings, 1)
    with pytest.raises(TopicPlanError, match="TOPIC_MIN_INSYNC_REPLICAS=3 is more than"):
        plan(
            {"t": TopicKind.COMMANDS},
            topic_settings(min_insync_replicas=3, replication_factor=2),
            3,
        )


def test_each_kind_gets_its_retention_and_cleanup_policy() -> None:
    topics = DocumentTopics.for_family("orders", "p.")
    specs = plan(of_families([topics], "p.inventory.movements"), topic_settings(), 3)
    configs = {name: dict(spec.configs) for name, spec in specs.items()}
    outcome = {
        "min.insync.replicas": "2",
        "cleanup.policy": "delete",
        "retention.ms": str(72 * HOUR_MS),
    }
    assert configs == {
        "p.orders.commands": {
            **outcome,
            "retention.ms": str(168 * HOUR_MS),
            "segment.ms": str(42 * HOUR_MS),
            "message.timestamp.type": "LogAppendTime",
        },
        "p.orders.events": outcome,
        "p.orders.rejections": outcome,
        "p.orders.previews": outcome,
        "p.inventory.movements": outcome,
        "p.orders.commands.dlq": {**outcome, "retention.ms": "-1"},
        "p.orders.state": {"min.insync.replicas": "2", "cleanup.policy": "compact"},
    }
    assert {spec.partitions for spec in specs.values()} == {6}
    assert set(kinds_of(topics)) == set(topics.all())


def test_a_topic_as_planned_has_no_differences() -> None:
    spec = TopicSpec(
        TopicKind.STATE, 3, 3, {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    )
    found = FoundTopic(3, 3, {"cleanup.policy": "compact", "min.insync.replicas": "2", "x": "y"})
    assert differences(spec, found) == []


def test_every_difference_is_named_with_what_the_settings_say() -> None:
    spec = TopicSpec(
        TopicKind.STATE, 3, 3, {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    )
    found = FoundTopic(1, 1, {"cleanup.policy": "compact, delete"})
    assert differences(spec, found) == [
        "1 partitions, settings say 3",
        "replication factor 1, settings say 3",
        "min.insync.replicas not set (the broker's default), settings say 2",
        "cleanup.policy=compact, delete, settings say compact",
    ]
    reordered = FoundTopic(3, 3, {"cleanup.policy": "compact", "min.insync.replicas": "2"})
    assert differences(spec, reordered) == []


def test_commands_may_not_outlive_the_memory_of_their_ids() -> None:
    # Kept up to 1.25 times the retention: the segment rolls after a quarter of it.
    with pytest.raises(ValidationError, match="keeps a command up to 30 hours"):
        Settings(inbox_retention_hours=25, topic_commands_retention_hours=24)
    assert Settings(inbox_retention_hours=30, topic_commands_retention_hours=24)
    # A day by default: commands hold plaintext personal data an erasure cannot reach.
    assert Settings().topics().retention_hours[TopicKind.COMMANDS] == 24
    assert Settings(inbox_retention_hours=10).topics().retention_hours[TopicKind.COMMANDS] == 8


@pytest.mark.parametrize("hours", [0, 0.001, float("nan"), float("inf"), -2])
def test_retention_is_a_minute_or_more_or_for_ever(hours: float) -> None:
    with pytest.raises(ValidationError, match=r"TOPIC_OUTCOMES_RETENTION_HOURS|finite"):
        Settings(topic_outcomes_retention_hours=hours)
    forever = Settings(topic_dead_letters_retention_hours=-1).topics()
    assert forever.retention_hours[TopicKind.DEAD_LETTERS] == FOREVER


def test_no_broker_no_plan() -> None:
    with pytest.raises(TopicPlanError, match="reports no broker"):
        plan({"t": TopicKind.OUTCOMES}, topic_settings(), 0)
