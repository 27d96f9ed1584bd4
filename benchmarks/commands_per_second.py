"""Throughput, latency and memory of the service as its users see it. Prints figures; asserts
nothing about speed.

Like `make run`: embedded Postgres (durable commits) and broker, the service as its own process
(`order-service serve`). This process produces the commands and reads the outcomes from the
output topics. Usage: make bench [ARGS="--documents 10000"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from service.adapters.crypto import MasterKey
from service.devstack.processes import free_port
from service.devstack.provision import Endpoints, provisioned
from tests.support import change_status, create, create_order, order_status, redact_customer

Command = dict[str, Any]


MASTER_KEY = MasterKey.generate_text()
"""One master key for every service a run starts: they share a database, and what one wraps
(data keys, the signing key) the next must open."""


class Service:
    """The service as a separate process, configured like `make run`."""

    def __init__(self, stack: Endpoints, log: Path, checkout: Path | None, **settings: str) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:6]}."
        self.health_port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": stack.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
            "KAFKA_IDEMPOTENT_PRODUCER": str(stack.kafka_idempotent_producer).lower(),
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "TOPIC_REPLICATION_FACTOR": "1",
            "TOPIC_PREFIX": self.prefix,
            "CONSUMER_GROUP": f"{self.prefix}service",
            "HEALTH_PORT": str(self.health_port),
            "MASTER_KEY": MASTER_KEY,
            "LOG_LEVEL": "WARNING",
            # Like `make run`: commands name their actors (older checkouts ignore the second).
            "AUTH_MODE": "off",
            "AUTH_ALLOW_CLAIMED_ACTORS": "true",
            **settings,
        }
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                env=env,
                stdout=out,
                stderr=out,
                cwd=checkout,  # `-m service` imports the package of the working directory
            )

    def topics(self, family: str) -> DocumentTopics:
        return DocumentTopics.for_family(family, self.prefix)

    def peak_rss_mib(self) -> tuple[float, float]:
        """Peak RSS of the service process and of its relay child."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return _peak_rss_mib(pid), sum(_peak_rss_mib(int(child)) for child in children)

    def batches(self) -> tuple[float, float]:
        """Messages decided and batches they were decided in so far, from the service's metrics
        (every family's)."""
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        totals = {"_sum": 0.0, "_count": 0.0}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            for suffix in totals:
                if name.startswith(f"order_service_batch_size_messages{suffix}{{"):
                    totals[suffix] += float(value)
        return totals["_sum"], totals["_count"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(service_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process of the stack: the service, its
    relay child, every Postgres process, the broker, and this one, the load generator (it runs
    apart from the service, as a producer would). Postgres counts with the time of its exited
    processes (autovacuum workers, ended backends), which moves to the postmaster when it reaps
    them: a worker that ends between two samples is neither lost nor counted negative."""
    relay = {
        int(p) for p in Path(f"/proc/{service_pid}/task/{service_pid}/children").read_text().split()
    }
    own = os.times()  # this process produces the commands and reads the outcomes
    used = {
        "service": 0.0,
        "relay": 0.0,
        "postgres": 0.0,
        "broker": 0.0,
        "load generator": own.user + own.system,
    }
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        if pid == service_pid:
            used["service"] += seconds
        elif pid in relay:
            used["relay"] += seconds
        elif b"postgres" in command.split(b" ", 1)[0]:
            reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # cutime, cstime
            used["postgres"] += seconds + reaped
        elif b"tansu" in command.split(b" ", 1)[0]:
            used["broker"] += seconds
    return used


def mean_batch(before: tuple[float, float], after: tuple[float, float]) -> str:
    messages, batches = after[0] - before[0], after[1] - before[1]
    return f"{messages / batches:,.0f} commands in {batches:,.0f} batches" if batches else "none"


def cpu_per_command(before: dict[str, float], after: dict[str, float], commands: int) -> str:
    return ", ".join(
        f"{name} {(after[name] - before[name]) / commands * 1e6:,.0f}" for name in before
    )


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class Client:
    """Produces commands and notes when each one's first outcome is readable."""

    def __init__(self, bootstrap: str, topics: DocumentTopics, id_field: str) -> None:
        self.topics, self.id_field = topics, id_field
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        self.consumer = AIOKafkaConsumer(
            topics.events,
            topics.rejections,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        self.sent_at: dict[str, float] = {}
        self.answered_at: dict[str, float] = {}
        self.erasure_receipt_at: dict[str, float] = {}
        self._waiting: set[str] = set()
        """The command_ids wait_answered waits for that have no outcome yet."""
        self._all_answered = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        assert self._reader is not None
        self._reader.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def _read(self) -> None:
        async for record in self.consumer:
            body = json.loads(record.value)
            now = time.perf_counter()
            command_id = body["command_id"]
            self.answered_at.setdefault(command_id, now)
            if command_id in self._waiting:
                self._waiting.discard(command_id)
                if not self._waiting:
                    self._all_answered.set()
            if body.get("type") == "customer.redacted":
                self.erasure_receipt_at[body["command_id"]] = now

    async def send(self, body: Command) -> None:
        self.sent_at[body["command_id"]] = time.perf_counter()
        await self.producer.send(
            self.topics.commands, json.dumps(body).encode(), key=str(body[self.id_field]).encode()
        )

    async def wait_answered(self, commands: list[Command], timeout: float = 300) -> None:
        # Woken by the reader when the last one is answered: a poll that scanned the commands
        # would spend the load generator's CPU, on the cores the stack measured shares.
        self._waiting = {c["command_id"] for c in commands} - self.answered_at.keys()
        self._all_answered.clear()
        if not self._waiting:
            return
        try:
            await asyncio.wait_for(self._all_answered.wait(), timeout)
        except TimeoutError:
            missing = len(self._waiting)
            raise TimeoutError(f"{missing} commands unanswered after {timeout}s") from None

    async def wait_for_receipt(self, command_id: str, timeout: float = 120) -> None:
        deadline = time.perf_counter() + timeout
        while command_id not in self.erasure_receipt_at:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no customer.redacted after {timeout}s")
            await asyncio.sleep(0.01)

    def latencies_ms(self, commands: list[Command]) -> list[float]:
        return sorted(
            (self.answered_at[c["command_id"]] - self.sent_at[c["command_id"]]) * 1000
            for c in commands
        )


def purchase_orders(prefix: str, count: int) -> Iterator[list[Command]]:
    """Creates, then the `open` of each: two phases sent back to back."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    yield [create(i) for i in ids]
    yield [change_status(i, "open") for i in ids]


def orders(prefix: str, count: int) -> Iterator[list[Command]]:
    """Creates (three groups of personal data sealed each), then cancels."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    yield [create_order(i) for i in ids]
    yield [order_status(i, "cancelled", "customer") for i in ids]


async def throughput(client: Client, phases: list[list[Command]]) -> float:
    commands = [c for phase in phases for c in phase]
    started = time.perf_counter()
    for body in commands:
        await client.send(body)
    await client.producer.flush()
    await client.wait_answered(commands)
    return len(commands) / (time.perf_counter() - started)


def numbered(prefix: str) -> Callable[[int], Command]:
    """Creates of purchase orders prefix-0, prefix-1, ... by number."""
    return lambda i: create(f"{prefix}-{i}")


async def offered(client: Client, make: Callable[[int], Command], rate: int, seconds: float) -> str:
    """Commands at a steady rate; percentiles of produce -> outcome readable."""
    commands = [make(i) for i in range(int(rate * seconds))]
    started = time.perf_counter()
    for index, body in enumerate(commands):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send(body)
    await client.wait_answered(commands)
    ms = client.latencies_ms(commands)

    def at(q: float) -> str:
        return f"{ms[min(len(ms) - 1, int(len(ms) * q))]:6.1f} ms"

    return f"p50 {at(0.5)}  p95 {at(0.95)}  p99 {at(0.99)}  ({len(ms)} commands)"


@contextmanager
def service(
    stack: Endpoints, work: Path, checkout: Path | None, **settings: str
) -> Iterator[Service]:
    running = Service(stack, work / "service.log", checkout, **settings)
    try:
        _wait_healthy(running)
        yield running
    finally:
        running.stop()


def _wait_healthy(running: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{running.health_port}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the service did not become healthy")


async def client_for(running: Service, stack: Endpoints, family: str, id_field: str) -> Client:
    client = Client(stack.kafka_bootstrap_servers, running.topics(family), id_field)
    await client.start()
    warm = create("warm") if family == PURCHASE_ORDERS else create_order("warm")
    await client.send(warm)
    await client.wait_answered([warm], timeout=60)  # the group has joined
    return client


PRELOAD_SNAPSHOT = json.dumps(
    {
        **create("PRE")["payload"],
        "status": "open",
        "receipts": [],
        "invoices": [],
    }
)
TABLES = ("orders", "order_history", "inbox", "outbox")
DOCUMENT_TABLES = ("documents", "document_history")
"""Purchase orders' tables since migration 0016; before it, their own."""
EARLIER_DOCUMENT_TABLES = ("purchase_orders", "purchase_order_history")

# The same preload into either schema: a checkout from before migration 0016 has the purchase
# orders' own tables, later ones the shared document tables.
PRELOAD_DOCUMENTS = (
    "INSERT INTO documents (kind, tenant_id, document_id, status, version, document)"
    " SELECT 'purchase-orders', 'preload', 'PRE-' || g, 'open', 2, $1::jsonb"
    " FROM generate_series(1, $2) g"
)
PRELOAD_HISTORY = (
    "INSERT INTO document_history (kind, tenant_id, document_id, version, command_id, event_id,"
    " event_type, document)"
    " SELECT 'purchase-orders', 'preload', 'PRE-' || g, v, gen_random_uuid(), gen_random_uuid(),"
    " 'purchase_order.status_changed', $1::jsonb"
    " FROM generate_series(1, $2) g, (VALUES (1), (2)) AS versions(v)"
)
EARLIER_PRELOAD_DOCUMENTS = (
    "INSERT INTO purchase_orders (tenant_id, purchase_order_id, status, version, document)"
    " SELECT 'preload', 'PRE-' || g, 'open', 2, $1::jsonb FROM generate_series(1, $2) g"
)
EARLIER_PRELOAD_HISTORY = (
    "INSERT INTO purchase_order_history (tenant_id, purchase_order_id, version,"
    " command_id, event_id, event_type, document)"
    " SELECT 'preload', 'PRE-' || g, v, gen_random_uuid(), gen_random_uuid(),"
    " 'purchase_order.status_changed', $1::jsonb"
    " FROM generate_series(1, $2) g, (VALUES (1), (2)) AS versions(v)"
)


async def has_document_tables(conn: asyncpg.Connection) -> bool:
    found: bool = await conn.fetchval("SELECT to_regclass('documents') IS NOT NULL")
    return found


async def preload(database_url: str, count: int) -> None:
    """`count` open purchase orders with two history rows each and their inbox keys, written
    directly, as if that many had been decided before: the workload then runs beside them."""
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        shared = await has_document_tables(conn)
        for statement in (
            (PRELOAD_DOCUMENTS, PRELOAD_HISTORY)
            if shared
            else (EARLIER_PRELOAD_DOCUMENTS, EARLIER_PRELOAD_HISTORY)
        ):
            await conn.execute(statement, PRELOAD_SNAPSHOT, count)
        await conn.execute(
            "INSERT INTO inbox (message_key, request_hash, outcome)"
            " SELECT gen_random_uuid()::text, '\\x00', 'accepted' FROM generate_series(1, $1)",
            2 * count,
        )
        await conn.execute("ANALYZE")
        print(f"preloaded {count:,} purchase orders in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


async def table_sizes(database_url: str) -> str:
    """Exact row counts (the statistics' estimates lag behind) and sizes with indexes."""
    conn = await asyncpg.connect(database_url)
    try:
        sizes = []
        shared = await has_document_tables(conn)
        for table in (*(DOCUMENT_TABLES if shared else EARLIER_DOCUMENT_TABLES), *TABLES):
            rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            sizes.append(f"{table} {rows:,} rows {size / 2**20:,.0f} MiB")
    finally:
        await conn.close()
    return ", ".join(sizes)


async def run(
    stack: Endpoints,
    work: Path,
    documents: int,
    order_documents: int,
    preloaded: int,
    checkout: Path | None,
) -> None:
    with service(stack, work, checkout) as running:
        if preloaded:
            await preload(stack.database_url, preloaded)
        po = await client_for(running, stack, PURCHASE_ORDERS, "purchase_order_id")
        cpu, batches = cpu_seconds(running.process.pid), running.batches()
        rate = await throughput(po, list(purchase_orders("PO", documents)))
        print(
            f"purchase orders: {documents} creates then {documents} opens: {rate:,.0f} commands/s"
        )
        used = cpu_per_command(cpu, cpu_seconds(running.process.pid), 2 * documents)
        sizes = mean_batch(batches, running.batches())
        print(f"  CPU per command (us): {used}; mean batch {sizes}")
        for offered_rate in (10, 1000, 2000):
            seconds = 5 if offered_rate > 10 else 20
            line = await offered(po, numbered(f"L{offered_rate}"), offered_rate, seconds)
            print(f"  latency at {offered_rate:>5} commands/s offered: {line}")
        await po.stop()
        co = await client_for(running, stack, ORDERS, "order_id")
        cpu, batches = cpu_seconds(running.process.pid), running.batches()
        rate = await throughput(co, list(orders("O", order_documents)))
        print(
            f"customer orders: {order_documents} creates then {order_documents} cancels:"
            f" {rate:,.0f} commands/s"
        )
        used = cpu_per_command(cpu, cpu_seconds(running.process.pid), 2 * order_documents)
        sizes = mean_batch(batches, running.batches())
        print(f"  CPU per command (us): {used}; mean batch {sizes}")
        # Every one of those orders is CUST-1's and cancelled: erase the customer across them.
        redact = redact_customer("CUST-1")
        co.id_field = "customer_id"
        await co.send(redact)
        await co.wait_for_receipt(redact["command_id"])
        took = co.erasure_receipt_at[redact["command_id"]] - co.sent_at[redact["command_id"]]
        print(
            f"  customer.redact of a customer with {order_documents} cancelled orders, command"
            f" -> customer.redacted: {took * 1000:,.0f} ms"
        )
        await co.stop()
        print(f"  tables: {await table_sizes(stack.database_url)}")
        service_mib, relay_mib = running.peak_rss_mib()
        print(f"  peak RSS: service {service_mib:.0f} MiB, its relay process {relay_mib:.0f} MiB")

    if checkout is not None:
        return  # an earlier build has no batches to shrink
    with service(stack, work, None, BATCH_MAX_RECORDS="1") as running:
        po = await client_for(running, stack, PURCHASE_ORDERS, "purchase_order_id")
        small = max(500, documents // 10)
        rate = await throughput(po, list(purchase_orders("ONE", small)))
        print(
            f"batches of one (a transaction per command), purchase orders,"
            f" {small} + {small}: {rate:,.0f} commands/s"
        )
        await po.stop()
    with service(stack, work, None, METRICS_ENABLED="false") as running:
        po = await client_for(running, stack, PURCHASE_ORDERS, "purchase_order_id")
        rate = await throughput(po, list(purchase_orders("OFF", documents)))
        print(
            f"metrics off (METRICS_ENABLED=false), purchase orders, {documents} + {documents}:"
            f" {rate:,.0f} commands/s"
        )
        await po.stop()


def machine_reference() -> str:
    """This machine's speed at the moment, by a fixed amount of the service's own work: the
    decision path alone (benchmarks.decision_path: in process, in memory, no I/O), run in a
    process of its own while nothing of the stack runs. A shared machine's speed moves between
    runs and within one (the same code has taken 67 to 119 us here): read each run's figures
    beside it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.decision_path",
            "--batches",
            "5",
            "--workload",
            "purchase-orders",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"([\d.,]+) us at best", result.stdout)
    assert found is not None, result.stdout
    return f"the decision path alone takes {found.group(1)} us per purchase-order command"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--order-documents", type=int, default=1_000)
    parser.add_argument(
        "--preload", type=int, default=0, help="purchase orders already in the tables"
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        default=None,
        help="run the service of another checkout (an earlier commit: the before figures)",
    )
    args = parser.parse_args()
    print(f"machine speed before (nothing else running): {machine_reference()}", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        work.chmod(0o711)
        with provisioned(work, durable=True, allow_docker=False) as stack:
            print(
                f"Postgres: {stack.database_origin}, Kafka: {stack.kafka_origin}, durable commits,"
                f" {os.cpu_count()} cores"
            )
            asyncio.run(
                run(
                    stack,
                    work,
                    args.documents,
                    args.order_documents,
                    args.preload,
                    args.checkout,
                )
            )
    print(f"machine speed after (nothing else running): {machine_reference()}")


if __name__ == "__main__":
    main()
