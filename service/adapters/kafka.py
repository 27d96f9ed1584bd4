"""Kafka producer and topic administration, shaped for the outbox relay's guarantees."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.partitioner import DefaultPartitioner
from murmurhash2 import murmurhash2

from service.adapters.kafka_connection import ClientRole, KafkaConnection
from service.adapters.topic_plan import (
    PRODUCTION_REPLICATION_FACTOR,
    FoundTopic,
    TopicKind,
    TopicPlanError,
    TopicSettings,
    TopicSpec,
    differences,
    plan,
)
from service.domain.values import frozen
from service.errors import ConfigurationError

log = logging.getLogger(__name__)


_KAFKA_SEED = 0x9747B28C
"""The seed of Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2)."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, compiled. The partitioner hashes the key of every message published:
    in Python the hash cost 1.7-5.1 us for keys of 8-36 bytes, a cache of recent keys 0.5-0.7
    us a hit, and under `make bench` the partitioner was 3% of the service's samples; this one
    costs 0.3-0.5 us (tests/unit/test_partitioner.py holds it to aiokafka's and Java's
    values)."""
    return murmurhash2(data, _KAFKA_SEED)


class KeyHashPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as Java clients do, so a key lands
    where any other producer would put it), with the compiled hash."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            chosen: int = _DEFAULT_PARTITIONER(key, all_partitions, available)
            return chosen
        return all_partitions[(murmurhash2(key, _KAFKA_SEED) & 0x7FFFFFFF) % len(all_partitions)]


_DEFAULT_PARTITIONER = DefaultPartitioner()


PUBLISHER_BATCH_BYTES = 512 * 1024
"""The publisher fills whole batches itself; half the broker's default `message.max.bytes`."""


def make_producer(
    connection: KafkaConnection,
    *,
    idempotent: bool,
    role: ClientRole = "relay",
    batch_bytes: int = 16_384,
) -> AIOKafkaProducer:
    """`batch_bytes`: aiokafka's default for a producer that batches message by message; the
    publisher, which fills whole batches itself, asks for PUBLISHER_BATCH_BYTES."""
    # acks=all: a message counts as published only once every in-sync replica has it.
    return AIOKafkaProducer(
        **connection.client_options(role),
        acks="all",
        enable_idempotence=idempotent,
        partitioner=KeyHashPartitioner(),
        linger_ms=2,
        request_timeout_ms=15_000,
        max_request_size=4 * 1024 * 1024,
        max_batch_size=batch_bytes,
    )


@frozen
class TopicCheck:
    """What `ensure_topics` found: the cluster's size, the topics it created, and how existing
    ones differ from the settings (reported, never changed)."""

    brokers: int
    replication_factor: int
    created: tuple[str, ...] = ()
    differences: Mapping[str, Sequence[str]] = field(default_factory=dict)
    unchecked: Mapping[str, str] = field(default_factory=dict)
    """Existing topics that could not be described, with the error's name (an ACL refusing
    DescribeConfigs, say); the broker's message is left out, it is not the service's to show."""

    def report(self) -> dict[str, Any]:
        """For /health."""
        report: dict[str, Any] = {
            "brokers": self.brokers,
            "replication_factor": self.replication_factor,
            "differences": {name: list(found) for name, found in self.differences.items()},
        }
        if self.unchecked:
            report["unchecked"] = dict(self.unchecked)
        return report


async def ensure_topics(
    connection: KafkaConnection,
    topics: Mapping[str, TopicKind],
    settings: TopicSettings,
    *,
    replication_set: bool = False,
) -> TopicCheck:
    """Create the missing topics as `settings` say for their kind, and compare the existing ones
    with the settings. `replication_set`: the replication factor was configured, not derived
    from the cluster's size (no warning for a small one then: someone chose it)."""
    admin = AIOKafkaAdminClient(**connection.client_options("admin"))
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        try:
            specs = plan(topics, settings, brokers)
        except TopicPlanError as error:
            raise ConfigurationError(str(error)) from error
        replicas = next(iter(specs.values())).replication_factor if specs else 0
        if replicas < PRODUCTION_REPLICATION_FACTOR and not replication_set:
            log.warning(
                "the Kafka cluster reports %d live broker(s): topics are created with %d"
                " replica(s); losing a broker loses outcomes the outbox has already deleted."
                " Production needs %d brokers or more (set TOPIC_REPLICATION_FACTOR to say"
                " this is meant)",
                brokers,
                replicas,
                PRODUCTION_REPLICATION_FACTOR,
            )
        existing = set(await admin.list_topics())
        missing = [name for name in specs if name not in existing]
        if missing:
            await _create(admin, {name: specs[name] for name in missing})
        present = {name: spec for name, spec in specs.items() if name in existing}
        try:
            found, unchecked = await _describe(admin, sorted(present))
        except Exception as error:  # a broker that refuses to describe at all: not fatal
            found, unchecked = {}, {name: type(error).__name__ for name in present}
        if unchecked:
            log.warning(
                "could not check the settings of topics %s",
                ", ".join(f"{name} ({why})" for name, why in sorted(unchecked.items())),
            )
        drift = {
            name: found_differences
            for name, spec in present.items()
            if name in found and (found_differences := differences(spec, found[name]))
        }
        for name, found_differences in drift.items():
            log.warning(
                "topic %s differs from the settings (left as it is): %s",
                name,
                "; ".join(found_differences),
            )
        return TopicCheck(brokers, replicas, tuple(missing), drift, unchecked)
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, specs: Mapping[str, TopicSpec]) -> None:
    response = await admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            for name, spec in specs.items()
        ]
    )
    for name, code, *_ in getattr(response, "topic_errors", []):
        if code not in (0, TopicAlreadyExistsError.errno):
            raise ConfigurationError(f"creating topic {name} failed with Kafka error code {code}")
    log.info("created topics %s", ", ".join(specs))


async def _describe(
    admin: AIOKafkaAdminClient, names: Sequence[str]
) -> tuple[dict[str, FoundTopic], dict[str, str]]:
    """How each topic is, and those the broker would not describe with the error's name. A
    broker answers a refused or unknown topic with an error code of its own, not an exception."""
    if not names:
        return {}, {}
    unchecked: dict[str, str] = {}
    shape: dict[str, tuple[int, int]] = {}
    for topic in await admin.describe_topics(list(names)):
        if topic["error_code"]:
            unchecked[topic["topic"]] = for_code(topic["error_code"]).__name__
            continue
        partitions = topic["partitions"]
        shape[topic["topic"]] = (
            len(partitions),
            min((len(p["replicas"]) for p in partitions), default=0),
        )
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        # (error_code, error_message, resource_type, resource_name, config_entries), each
        # entry starting (name, value, ...), in every version of DescribeConfigs.
        for code, _, _, name, entries in response.resources:
            if code:
                unchecked.setdefault(name, for_code(code).__name__)
                continue
            configs[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    found = {
        name: FoundTopic(*shape[name], configs=configs[name])
        for name in names
        if name not in unchecked and name in shape and name in configs
    }
    for name in names:
        if name not in found:
            unchecked.setdefault(name, "not described")
    return found, unchecked
