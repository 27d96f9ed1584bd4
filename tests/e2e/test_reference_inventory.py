"""The reference inventory consumer keeps stock exactly once: a long random sequence of both
families, with the consumer SIGKILLed in the middle, ends on the stock the orders imply and the
sum of every movement; a movement published again changes nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from examples.inventory_consumer import stock
from service.devstack.processes import die_with_parent
from service.settings import Settings
from tests.inventory_sequences import (
    random_command,
    random_order_command,
    replayed,
    send_and_wait,
    stock_the_orders_imply,
)
from tests.support import (
    Run,
    WireProbe,
    end_offsets,
    eventually,
    running_service,
    service_env,
)

# The consumer is a top-level package of the repository, not of the installed service: run it
# from the repository's root, where `python -m` finds it.
ROOT = Path(__file__).parents[2]
CONSUMER = [sys.executable, "-m", "examples.inventory_consumer"]


async def inventory_consumer(settings: Settings, *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        *CONSUMER,
        *args,
        env=service_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


class ReferenceConsumer:
    def __init__(self, settings: Settings, log: Path) -> None:
        self._env = {
            **service_env(settings),
            "INVENTORY_CONSUMER_GROUP": f"{settings.topic_prefix}inventory",
        }
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as out:
            self._process = subprocess.Popen(
                [*CONSUMER, "run"],
                env=self._env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGTERM),  # gone with a killed test run
            )

    def kill(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(20)


async def test_stock_stays_exact_through_kills_redelivery_and_republished_movements(
    settings: Settings,
    probe: WireProbe,
    order_probe: WireProbe,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261123)
    commands = [random_command(rng, serial) for serial in range(240)]
    order_commands = [random_order_command(rng) for _ in range(180)]
    movements_topic = probe.movements_topic
    consumer = ReferenceConsumer(settings, tmp_path / "consumer.log")

    async def caught_up() -> bool:
        ends = await end_offsets(settings.kafka_bootstrap_servers, movements_topic)
        stored = await stock.next_offsets(db, movements_topic)
        # >=: this broker's reported end can trail the last offset it has handed out.
        return all(stored.get(p, 0) >= end for p, end in ends.items())

    async with running_service(settings):
        consumer.start()
        try:
            await send_and_wait(probe, order_probe, commands[:120], order_commands[:90])
            await asyncio.sleep(1.0)
            consumer.kill()  # mid-stream: whatever it applied is committed with its offsets
            consumer.start()
            await send_and_wait(probe, order_probe, commands[120:], order_commands[90:])
            consumer.kill()
            consumer.start()

            expected = await stock_the_orders_imply(db)
            await eventually(caught_up, timeout=90, what="the consumer caught up")

            async def stock_as_implied() -> bool:
                return await stock.all_stock(db) == dict(expected)

            await eventually(stock_as_implied, timeout=30, what="the stock the orders imply")
            assert dict(replayed(probe.movements())) == dict(expected)

            # The same movements published again (a relay retry, a replay): nothing changes.
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
            await producer.start()
            republished: dict[int, int] = {}
            try:
                for movement in probe.on(movements_topic)[:25]:
                    sent = await producer.send_and_wait(
                        movements_topic, movement.value, key=movement.raw_key
                    )
                    republished[sent.partition] = sent.offset + 1
            finally:
                await producer.stop()

            async def read_again() -> bool:
                stored = await stock.next_offsets(db, movements_topic)
                return all(stored.get(p, 0) >= end for p, end in republished.items())

            await eventually(read_again, timeout=60, what="the republished movements read")
            assert await stock.all_stock(db) == dict(expected)

            tenant, warehouse, sku, _ = next(iter(expected))
            shown = await inventory_consumer(
                settings, "stock", sku, "--warehouse", warehouse, "--tenant", tenant
            )
        finally:
            consumer.stop()
    on_hand = expected[(tenant, warehouse, sku, "on_hand")]
    reserved = expected[(tenant, warehouse, sku, "reserved")]
    assert f"on hand {on_hand}, reserved {reserved}, available {on_hand - reserved}" in shown.stdout
