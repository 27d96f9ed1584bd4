"""Kafka producer and topic administration, shaped for the outbox relay's guarantees."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from service.adapters.kafka_connection import KafkaConnection

log = logging.getLogger(__name__)


def make_producer(connection: KafkaConnection, *, idempotent: bool) -> AIOKafkaProducer:
    # acks=all: a message counts as published only once every in-sync replica has it.
    return AIOKafkaProducer(
        **connection.client_options("relay"),
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=2,
        request_timeout_ms=15_000,
        max_request_size=4 * 1024 * 1024,
    )


async def ensure_topics(
    connection: KafkaConnection,
    topics: Iterable[str],
    partitions: int,
    compacted: Collection[str] = (),
) -> None:
    """Create missing topics; existing ones are left as they are. Those in `compacted` are
    created with `cleanup.policy=compact` (state topics: Kafka keeps each key's latest record
    rather than deleting by age); one that exists without it is reported, not changed."""
    admin = AIOKafkaAdminClient(**connection.client_options("admin"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        await _warn_unless_compacted(admin, sorted(existing.intersection(compacted)))
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=COMPACTED if name in compacted else {},
                )
                for name in missing
            ]
        )
        for name, code, *_ in getattr(response, "topic_errors", []):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating topic {name} failed with Kafka error code {code}")
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()


COMPACTED = {"cleanup.policy": "compact"}


async def _warn_unless_compacted(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> None:
    """A state topic that deletes by age loses the states of documents that stopped changing,
    and readers that bootstrap from it miss them: say so loudly, but leave the topic to its
    owner (changing a topic's policy is an operator's decision)."""
    if not topics:
        return
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        )
    except Exception as error:  # a broker or ACL that refuses DescribeConfigs: not fatal
        log.warning("could not check the cleanup policy of %s: %s", ", ".join(topics), error)
        return
    for response in responses:
        # (error_code, error_message, resource_type, resource_name, config_entries), each
        # entry starting (name, value, ...), in every version of DescribeConfigs.
        for _, _, _, name, entries in response.resources:
            policy = next((entry[1] for entry in entries if entry[0] == "cleanup.policy"), None)
            if policy is None or "compact" not in policy:
                log.warning(
                    "topic %s exists with cleanup.policy=%s, not compact: it will lose the"
                    " states of documents that stop changing; set cleanup.policy=compact",
                    name,
                    policy or "unset (the broker's default, delete)",
                )
