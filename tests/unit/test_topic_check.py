"""Describing existing topics: a broker answers a topic it will not describe (no ACL, gone) with
an error code of its own, not an exception; such a topic is reported unchecked by the error's
name, never with differences made up from an empty answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError

from service.adapters.kafka import _describe
from service.adapters.topic_plan import FoundTopic

DENIED = TopicAuthorizationFailedError.errno


class FakeAdmin:
    def __init__(self, topics: list[dict[str, Any]], configs: list[tuple[Any, ...]]) -> None:
        self._topics = topics
        self._configs = configs

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [t for t in self._topics if t["topic"] in names]

    async def describe_configs(self, resources: list[Any]) -> list[SimpleNamespace]:
        return [SimpleNamespace(resources=self._configs)]


def partitions(count: int, replicas: int) -> list[dict[str, Any]]:
    return [{"partition": n, "replicas": list(range(replicas))} for n in range(count)]


async def test_topics_the_broker_will_not_describe_are_unchecked_by_error_name() -> None:
    admin = FakeAdmin(
        topics=[
            {"topic": "ok", "error_code": 0, "partitions": partitions(3, 3)},
            {
                "topic": "secret",
                "error_code": TopicAuthorizationFailedError.errno,
                "partitions": [],
            },
            {"topic": "no-configs", "error_code": 0, "partitions": partitions(3, 3)},
        ],
        configs=[
            (0, None, 2, "ok", [("cleanup.policy", "delete", False), ("x", None, True)]),
            (DENIED, "denied: principal User:svc", 2, "secret", []),
            (UnknownTopicOrPartitionError.errno, "gone", 2, "no-configs", []),
        ],
    )
    found, unchecked = await _describe(
        cast(AIOKafkaAdminClient, admin), ["ok", "secret", "no-configs", "absent"]
    )
    assert found == {"ok": FoundTopic(3, 3, {"cleanup.policy": "delete"})}
    assert unchecked == {
        "secret": "TopicAuthorizationFailedError",
        "no-configs": "UnknownTopicOrPartitionError",
        "absent": "not described",
    }
