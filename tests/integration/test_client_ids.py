"""A client's id reaches the broker: a consumer that joins a group is listed there under the
id its role gives it."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from service.adapters.kafka_connection import KafkaConnection
from service.devstack.provision import Endpoints
from tests.support import create_topics


async def test_a_group_member_is_known_to_the_broker_by_its_role_id(stack: Endpoints) -> None:
    connection = KafkaConnection(stack.kafka_bootstrap_servers, client_id=f"it-{uuid4().hex[:8]}")
    topic, group = f"client-ids-{uuid4().hex[:8]}", f"client-ids-{uuid4().hex[:8]}"
    await create_topics(connection, [topic], 1)
    consumer = AIOKafkaConsumer(
        topic, **connection.client_options("cli"), group_id=group, session_timeout_ms=2000
    )
    await consumer.start()
    admin = AIOKafkaAdminClient(**connection.client_options("admin"))
    await admin.start()
    try:
        await consumer.getmany(timeout_ms=3000)  # joined once partitions are assigned
        [response] = await admin.describe_consumer_groups([group])
        members: list[Any] = [member for described in response.groups for member in described[5]]
    finally:
        await admin.close()
        await consumer.stop()
    # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members), each
    # member (member_id, client_id, client_host, metadata, assignment). The embedded broker
    # leaves client_id empty there, but brokers name a new member `<client.id>-<uuid>` (as
    # Apache Kafka's group coordinator does), so the member id shows the id arrived.
    client_id = connection.client_id_for("cli")
    [(member_id, listed_client_id, *_)] = members
    assert member_id.startswith(f"{client_id}-") or listed_client_id == client_id, members
