"""Throughput and latency of the whole pipeline on the embedded stack (durable commits).

Prints figures; asserts nothing about speed. Usage: make bench [ARGS="--documents 500"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.crypto import MasterKey
from service.infra.processes import free_port
from service.infra.provision import provisioned
from service.settings import Settings
from tests.support import change_status, create, create_order, order_status, running_service


def workload(family: str, documents: int) -> tuple[str, str, list[dict[str, object]]]:
    """(topic family, id field, commands): per document a create, an accepted status change
    that moves stock, and a refused status change."""
    if family == "orders":
        # Each create seals three groups of personal data under three new data keys.
        commands = [create_order(f"O-{i}") for i in range(documents)]
        commands += [order_status(f"O-{i}", "ready") for i in range(documents)]
        commands += [order_status(f"O-{i}", "sent") for i in range(documents)]
        return ORDERS, "order_id", commands
    commands = [create(f"PO-{i}") for i in range(documents)]
    commands += [change_status(f"PO-{i}", "open") for i in range(documents)]
    commands += [change_status(f"PO-{i}", "closed") for i in range(documents)]
    return PURCHASE_ORDERS, "purchase_order_id", commands


async def measure(settings: Settings, family: str, documents: int) -> None:
    topic_family, id_field, commands = workload(family, documents)
    topics = DocumentTopics.for_family(topic_family, settings.topic_prefix)
    sent_at: dict[str, float] = {}
    answered_at: dict[str, float] = {}

    async with running_service(settings):
        consumer = AIOKafkaConsumer(
            topics.events,
            topics.rejections,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
        await producer.start()
        # Warm up: the consumer group has joined once the first outcome arrives.
        warm = {**commands[0], "command_id": str(uuid.uuid4()), id_field: "warm-up"}
        await producer.send_and_wait(topics.commands, json.dumps(warm).encode(), key=b"warm-up")
        async for record in consumer:
            if json.loads(record.value)["command_id"] == warm["command_id"]:
                break

        started = time.perf_counter()
        for body in commands:
            sent_at[body["command_id"]] = time.perf_counter()
            await producer.send(
                topics.commands, json.dumps(body).encode(), key=str(body[id_field]).encode()
            )
        await producer.flush()
        while len(answered_at) < len(commands):
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    command_id = str(json.loads(record.value)["command_id"])
                    if command_id in sent_at:
                        answered_at.setdefault(command_id, now)
        elapsed = time.perf_counter() - started
        await producer.stop()
        await consumer.stop()

    latencies = sorted(answered_at[c] - sent_at[c] for c in sent_at)
    print(f"family:              {family}")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"commands:            {len(commands)} ({documents} documents, 1/3 rejected)")
    print(f"elapsed:             {elapsed:.2f} s")
    print(f"throughput:          {len(commands) / elapsed:.0f} commands/s end to end")
    print(
        f"latency p50 / p99:   {statistics.median(latencies) * 1000:.0f} ms / "
        f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms (send to outcome, queued)"
    )
    print(f"peak RSS (process):  {rss_mib:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument(
        "--family", choices=["purchase-orders", "orders"], default="purchase-orders"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, provisioned(Path(work), durable=True) as stack:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(
            database_url=stack.database_url,
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            kafka_idempotent_producer=stack.kafka_idempotent_producer,
            topic_prefix=prefix,
            consumer_group=f"{prefix}service",
            health_port=free_port(),
            master_key=SecretStr(MasterKey.generate_text()),
        )
        print(f"Postgres: {stack.database_origin}, Kafka: {stack.kafka_origin}, durable commits")
        asyncio.run(measure(settings, args.family, args.documents))


if __name__ == "__main__":
    main()
