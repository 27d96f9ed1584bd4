"""The topics the service creates follow the settings for their kind; topics that exist and
differ are reported in the log and /health and left as they are; settings the cluster cannot
meet stop the service before it takes a command. On the real servers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import INVENTORY_MOVEMENTS, ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.kafka import ensure_topics
from service.adapters.topic_plan import TopicKind, kinds_of
from service.settings import Settings
from tests.support import (
    ServiceProcess,
    create_topics,
    eventually,
    http_get,
    one_broker_topic_settings,
    order_service,
)

pytestmark = pytest.mark.slow

HOUR_MS = 3_600_000


async def described(settings: Settings, names: list[str]) -> dict[str, dict[str, Any]]:
    """Partitions, replicas and topic configs of each topic, as the broker describes them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        metadata = await admin.describe_topics(names)
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found: dict[str, dict[str, Any]] = {
        topic["topic"]: {
            "partitions": len(topic["partitions"]),
            "replicas": {len(p["replicas"]) for p in topic["partitions"]},
        }
        for topic in metadata
    }
    for response in responses:
        for _, _, _, name, entries in response.resources:
            found[name]["configs"] = {entry[0]: entry[1] for entry in entries}
    return found


async def health(port: int) -> dict[str, Any] | None:
    status, body = await asyncio.to_thread(http_get, port, "/health")
    return json.loads(body) if status in (200, 503) else None


async def test_created_topics_follow_the_settings_of_their_kind(
    settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={
            "topic_partitions": 2,
            "topic_outcomes_retention_hours": 48.0,
            "topic_dead_letters_retention_hours": -1.0,
            "topic_commands_retention_hours": 12.0,
        }
    )
    report, _ = await health_once_ready(configured, tmp_path)
    assert report["checks"]["topics"] == {"brokers": 1, "replication_factor": 1, "differences": {}}

    prefix = settings.topic_prefix
    by_kind = {
        TopicKind.COMMANDS: {
            "cleanup.policy": "delete",
            "retention.ms": str(12 * HOUR_MS),
            "segment.ms": str(3 * HOUR_MS),
            "message.timestamp.type": "LogAppendTime",
        },
        TopicKind.OUTCOMES: {"cleanup.policy": "delete", "retention.ms": str(48 * HOUR_MS)},
        TopicKind.DEAD_LETTERS: {"cleanup.policy": "delete", "retention.ms": "-1"},
        TopicKind.STATE: {"cleanup.policy": "compact"},
    }
    wanted = {f"{prefix}{INVENTORY_MOVEMENTS}": by_kind[TopicKind.OUTCOMES]}
    for family in (PURCHASE_ORDERS, ORDERS):
        topics = DocumentTopics.for_family(family, prefix)
        wanted.update({name: by_kind[kind] for name, kind in kinds_of(topics).items()})
    found = await described(settings, sorted(wanted))
    for name, configs in wanted.items():
        assert found[name]["partitions"] == 2, name
        assert found[name]["replicas"] == {1}, name
        # A broker may report more (Apache Kafka lists every config, defaults included).
        reported = {key: found[name]["configs"].get(key) for key in configs}
        assert reported == configs, name
        assert found[name]["configs"]["min.insync.replicas"] == "1", name


async def _ready(port: int) -> bool:
    status, _ = await asyncio.to_thread(http_get, port, "/health/ready")
    return status == 200


async def health_once_ready(settings: Settings, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """`serve` with these settings: its /health once it is ready, and its log."""
    service = ServiceProcess(settings, tmp_path / "service.log")
    service.start()
    try:
        await eventually(lambda: _ready(settings.health_port), timeout=60, what="ready")
        report = await health(settings.health_port)
    except BaseException:
        print(service.log())
        raise
    finally:
        service.stop()
    assert report is not None
    return report, service.log()


async def test_a_topic_that_differs_is_reported_in_health_and_left_as_it_is(
    settings: Settings, tmp_path: Path
) -> None:
    topics = DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix)
    # As an operator might have made them before the service first ran.
    await create_topics(
        settings.kafka_connection(), [topics.events], 1, retention_hours={TopicKind.OUTCOMES: 1.0}
    )
    await create_topics(settings.kafka_connection(), [topics.state], settings.topic_partitions)

    report, log = await health_once_ready(settings, tmp_path)
    differences = report["checks"]["topics"]["differences"]
    assert differences == {
        topics.events: [
            f"1 partitions, settings say {settings.topic_partitions}",
            f"retention.ms={HOUR_MS}, settings say {7 * 24 * HOUR_MS}",
        ],
        topics.state: ["cleanup.policy=delete, settings say compact"],
    }
    # Reported, not judged: a restart would not change a topic.
    assert report["status"] == "ok"
    assert f"topic {topics.events} differs from the settings (left as it is)" in log

    found = await described(settings, [topics.events, topics.state])
    assert found[topics.events]["partitions"] == 1
    assert found[topics.events]["configs"]["retention.ms"] == str(HOUR_MS)
    assert found[topics.state]["configs"]["cleanup.policy"] == "delete"


async def test_settings_the_cluster_cannot_meet_stop_the_service_before_anything(
    settings: Settings,
) -> None:
    three = settings.model_copy(update={"topic_replication_factor": 3})
    refused = await order_service(three, "serve")
    assert refused.code != 0
    assert "TOPIC_REPLICATION_FACTOR=3 but the cluster reports 1 broker(s)" in refused.stderr

    unwritable = settings.model_copy(update={"topic_min_insync_replicas": 2})
    refused = await order_service(unwritable, "serve")
    assert refused.code != 0
    assert "TOPIC_MIN_INSYNC_REPLICAS=2 is more than the replication factor 1" in refused.stderr

    # Refused before creating anything.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = await admin.list_topics()
    finally:
        await admin.close()
    assert not [name for name in existing if name.startswith(settings.topic_prefix)]


async def test_a_cluster_too_small_for_production_is_said_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topics = DocumentTopics.for_family(PURCHASE_ORDERS, settings.topic_prefix)
    with caplog.at_level(logging.WARNING, logger="service.adapters.kafka"):
        check = await ensure_topics(
            settings.kafka_connection(),
            kinds_of(topics),
            one_broker_topic_settings(1, replication_factor=None),
        )
    assert (check.brokers, check.replication_factor, set(check.created)) == (
        1,
        1,
        set(topics.all()),
    )
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the Kafka cluster reports 1 live broker(s): topics are created")
    assert "Production needs 3 brokers or more" in warning
