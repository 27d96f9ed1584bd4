"""Runs the reference inventory consumer: inventory.movements in, stock levels out.

Partitions are shared by a consumer group, but positions come from the stock database: when
partitions are assigned, the consumer seeks to the offsets stored with the stock, and it never
commits offsets to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from pydantic import ValidationError

from contracts.inventory import InventoryMovement
from examples.inventory_consumer import stock

log = logging.getLogger(__name__)
BATCH_MAX_RECORDS = 2000
CLEANUP_EVERY_SECONDS = 600.0


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs while a batch may be applied, so it reads offsets on a connection of its own."""

    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool) -> None:
        self._consumer = consumer
        self._pool = pool

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            async with self._pool.acquire() as conn:
                stored = await stock.next_offsets(conn, tp.topic)
            if tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])
            else:
                await self._consumer.seek_to_beginning(tp)


async def run(
    database_url: str,
    kafka_options: dict[str, Any],
    topic: str,
    group: str,
    dedup_window_hours: float,
    stop: asyncio.Event,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    consumer = AIOKafkaConsumer(
        **kafka_options, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        async with pool.acquire() as conn:
            await stock.create_tables(conn)
        await consumer.start()
        consumer.subscribe([topic], listener=_SeekToStoredOffsets(consumer, pool))
        last_cleanup = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_MAX_RECORDS)
            movements: list[InventoryMovement] = []
            positions: dict[tuple[str, int], int] = {}
            for tp, records in batches.items():
                for record in records:
                    try:
                        movements.append(_movement(record.value))
                    except ValidationError as error:
                        # Not a movement of the contract: skipped, never blocking the rest.
                        log.error(
                            "skipped %s/%d/%d: %s", tp.topic, tp.partition, record.offset, error
                        )
                positions[(tp.topic, tp.partition)] = records[-1].offset + 1
            async with pool.acquire() as conn:
                if positions:
                    await stock.apply(conn, movements, positions)
                if loop.time() - last_cleanup > CLEANUP_EVERY_SECONDS:
                    await stock.forget_applied(conn, dedup_window_hours)
                    last_cleanup = loop.time()
    finally:
        await consumer.stop()
        await pool.close()


def _movement(value: bytes | None) -> InventoryMovement:
    # The contract's own model does the parsing. Fields it does not know are ignored: the
    # contract may add optional fields in a minor version, and a consumer built against an
    # older one must keep counting. A value it does not know where the contract lists them (a
    # new bucket) is refused and logged instead: this consumer could not count it correctly.
    return InventoryMovement.model_validate_json(value or b"", extra="ignore")
