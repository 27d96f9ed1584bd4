"""Test helpers: command builders and a probe that reads what the service publishes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from contracts.headers import (
    CLOUDEVENTS,
    CLOUDEVENTS_MOVEMENT_SOURCE,
    CLOUDEVENTS_MOVEMENT_TYPE,
    CLOUDEVENTS_SOURCE_ROOT,
    CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    cloudevents_source,
)
from contracts.topics import DocumentTopics
from service.adapters.kafka import TopicCheck, ensure_topics
from service.adapters.kafka_connection import KafkaConnection
from service.adapters.topic_plan import TopicKind, TopicSettings, kinds_of
from service.devstack.processes import die_with_parent, stop_server
from service.entrypoints.app import create_app
from service.settings import Settings


async def create_topics(
    connection: KafkaConnection,
    names: Iterable[str],
    partitions: int,
    compacted: Iterable[str] = (),
    **settings: Any,
) -> TopicCheck:
    """Topics for a test, with one replica (the embedded broker is one): those in `compacted`
    as state topics, the others as outcomes, unless `settings` say otherwise."""
    states = set(compacted)
    kinds = {name: TopicKind.STATE if name in states else TopicKind.OUTCOMES for name in names}
    kinds.update({name: TopicKind.STATE for name in states})
    return await ensure_topics(
        connection, kinds, one_broker_topic_settings(partitions, **settings), replication_set=True
    )


def one_broker_topic_settings(partitions: int, **overrides: Any) -> TopicSettings:
    values: dict[str, Any] = {
        "partitions": partitions,
        "replication_factor": 1,
        "min_insync_replicas": None,
        "retention_hours": {kind: 24.0 for kind in TopicKind if kind is not TopicKind.STATE},
    }
    return TopicSettings(**{**values, **overrides})


def details(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "supplier_id": "SUP-1",
        "warehouse_id": "WH-1",
        "products": [{"sku": "WIDGET-001", "quantity": 100, "cost": 9.99}],
        "payment_terms": "net_30",
        "payment_status": "unpaid",
        "currency_code": "USD",
        "order_date": "2025-01-15T00:00:00Z",
        "expected_delivery_date": "2025-02-01T00:00:00Z",
    }
    body.update(overrides)
    return body


def command(
    command_type: str,
    purchase_order_id: str,
    payload: dict[str, Any],
    *,
    tenant_id: str = "tenant-a",
    command_id: str | None = None,
    **envelope: Any,
) -> dict[str, Any]:
    return {
        "command_id": command_id or str(uuid.uuid4()),
        "type": command_type,
        "tenant_id": tenant_id,
        "purchase_order_id": purchase_order_id,
        "payload": payload,
        **envelope,
    }


def create(purchase_order_id: str, **kwargs: Any) -> dict[str, Any]:
    return command("purchase_order.create", purchase_order_id, details(), **kwargs)


def change_status(
    purchase_order_id: str, status: str, reason: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": status}
    if reason is not None:
        payload["reason"] = reason
    return command("purchase_order.change_status", purchase_order_id, payload, **kwargs)


def update(purchase_order_id: str, **overrides: Any) -> dict[str, Any]:
    return command("purchase_order.update", purchase_order_id, details(**overrides))


def update_shipping(purchase_order_id: str, **fields: Any) -> dict[str, Any]:
    return command("purchase_order.update_shipping_details", purchase_order_id, fields)


def receipt(purchase_order_id: str, receipt_id: str, **lines: int) -> dict[str, Any]:
    payload = {
        "receipt_id": receipt_id,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines.items()],
    }
    return command("purchase_order.record_receipt", purchase_order_id, payload)


def invoice(purchase_order_id: str, invoice_id: str, amount: str = "120.50") -> dict[str, Any]:
    payload = {"invoice_id": invoice_id, "amount": amount, "currency_code": "USD"}
    return command("purchase_order.link_invoice", purchase_order_id, payload)


def delete(purchase_order_id: str, **kwargs: Any) -> dict[str, Any]:
    return command("purchase_order.delete", purchase_order_id, {}, **kwargs)


def products(**quantities: int) -> list[dict[str, Any]]:
    return [{"sku": sku, "quantity": quantity} for sku, quantity in quantities.items()]


def address(name: str = "Ada Lovelace", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "lines": ["12 Analytical Way", "Flat 3"],
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
        "phone": "+44 20 7946 0000",
        "email": "ada@example.org",
    }
    body.update(overrides)
    return body


def order_details(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": "CUST-1",
        "warehouse_id": "WH-1",
        "items": [
            {"sku": "MUG-RED", "quantity": 2, "unit_price": "12.50", "currency": "EUR"},
            {"sku": "TEA-1KG", "quantity": 1, "unit_price": "30.00", "currency": "EUR"},
        ],
        "shipping_address": address(),
        "billing_address": address(),
    }
    body.update(overrides)
    return body


def order_command(
    command_type: str,
    order_id: str,
    payload: dict[str, Any],
    *,
    tenant_id: str = "tenant-a",
    actor: tuple[str, str] | None = None,
    **envelope: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "type": command_type,
        "tenant_id": tenant_id,
        "order_id": order_id,
        "payload": payload,
        **envelope,
    }
    if actor is not None:
        body["actor"] = {"type": actor[0], "id": actor[1]}
    return body


def create_order(order_id: str, **kwargs: Any) -> dict[str, Any]:
    payload = order_details(**kwargs.pop("details", {}))
    return order_command("order.create", order_id, payload, **kwargs)


def order_status(
    order_id: str, status: str, reason: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": status}
    if reason is not None:
        payload["reason"] = reason
    return order_command("order.change_status", order_id, payload, **kwargs)


def update_order(order_id: str, payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return order_command("order.update", order_id, payload, **kwargs)


def delete_order(order_id: str, **kwargs: Any) -> dict[str, Any]:
    return order_command("order.delete", order_id, {}, **kwargs)


def redact_customer(
    customer_id: str, tenant_id: str = "tenant-a", **payload: Any
) -> dict[str, Any]:
    """customer.redact: keyed by the customer, not by an order."""
    return {
        "command_id": str(uuid.uuid4()),
        "type": "customer.redact",
        "tenant_id": tenant_id,
        "customer_id": customer_id,
        "payload": payload,
    }


@dataclass
class Record:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, bytes]
    raw_key: bytes | None = None
    arrived: float = 0.0
    """When the probe read it (monotonic seconds)."""

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.value)
        return parsed


@dataclass
class WireProbe:
    """Sends commands and records everything published on the outcome topics."""

    bootstrap_servers: str
    topics: DocumentTopics
    movements_topic: str
    id_field: str = "purchase_order_id"
    records: list[Record] = field(default_factory=list)
    _producer: AIOKafkaProducer | None = None
    _consumer: AIOKafkaConsumer | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        await ensure_topics(
            KafkaConnection(self.bootstrap_servers),
            {**kinds_of(self.topics), self.movements_topic: TopicKind.OUTCOMES},
            one_broker_topic_settings(3),
            replication_set=True,
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            self.topics.events,
            self.topics.rejections,
            self.topics.dead_letters,
            self.topics.previews,
            self.movements_topic,
            bootstrap_servers=self.bootstrap_servers,
            auto_offset_reset="earliest",
            group_id=None,
            # Some brokers answer a fetch only when its wait ends; keep that wait short.
            fetch_max_wait_ms=50,
        )
        await self._consumer.start()
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        async for message in self._consumer:
            record = Record(
                message.topic,
                message.key.decode(errors="replace") if message.key is not None else None,
                message.value,
                {name: value for name, value in message.headers},
                message.key,
                time.monotonic(),
            )
            async with self._arrived:
                self.records.append(record)
                self._arrived.notify_all()

    async def send(self, body: dict[str, Any] | bytes, key: str | None = None) -> None:
        assert self._producer is not None
        if isinstance(body, dict):
            key = key if key is not None else body.get(self.id_field)
            value = json.dumps(body).encode()
        else:
            value = body
        await self._producer.send_and_wait(
            self.topics.commands, value, key=key.encode() if key is not None else None
        )

    async def send_raw(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> str:
        """Send exactly these bytes; returns where they landed, as dead letters name it."""
        assert self._producer is not None
        sent = await self._producer.send_and_wait(
            self.topics.commands, value, key=key, headers=list(headers) or None
        )
        return f"{sent.topic}/{sent.partition}/{sent.offset}@"

    async def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 45.0
    ) -> list[Record]:
        async def satisfied() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: predicate(self.records))

        try:
            await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"condition not met within {timeout}s; seen {len(self.records)} records:\n"
                + "\n".join(f"{r.topic} {r.value[:300]!r}" for r in self.records[-20:])
            ) from None
        return self.records

    async def event(self, event_id: str) -> dict[str, Any]:
        """The event with this id, once it is published."""

        def found(records: list[Record]) -> list[dict[str, Any]]:
            events = [r.body for r in records if r.topic == self.topics.events]
            return [event for event in events if event["event_id"] == event_id]

        [event] = found(await self.wait_for(lambda records: bool(found(records))))
        return event

    def on(self, topic: str) -> list[Record]:
        return [r for r in self.records if r.topic == topic]

    async def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a command as a dry run and return its next preview."""
        before = len(self.previews_of(body["command_id"]))
        await self.send({**body, "dry_run": True})
        await self.wait_for(lambda _: len(self.previews_of(body["command_id"])) > before)
        return self.previews_of(body["command_id"])[before]

    def previews_of(self, command_id: str) -> list[dict[str, Any]]:
        return [r.body for r in self.on(self.topics.previews) if r.body["command_id"] == command_id]

    def movements(self) -> list[dict[str, Any]]:
        return [r.body for r in self.on(self.movements_topic)]

    def outcomes(self, command_id: str) -> list[Record]:
        return [
            r
            for r in self.records
            if r.topic in (self.topics.events, self.topics.rejections)
            and r.body.get("command_id") == command_id
        ]

    async def outcome(self, command_id: str, timeout: float = 45.0) -> Record:
        await self.wait_for(lambda _: bool(self.outcomes(command_id)), timeout)
        return self.outcomes(command_id)[0]

    async def send_and_wait(self, body: dict[str, Any]) -> Record:
        """The command's first outcome: its first event, or its rejection."""
        await self.send(body)
        return await self.outcome(body["command_id"])

    async def events_of(self, body: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
        """Send a command that must be accepted; its first `count` events, in version order."""
        first = await self.send_and_wait(body)
        assert first.topic == self.topics.events, f"refused: {first.body}"
        command_id = body["command_id"]
        await self.wait_for(lambda _: len(self.outcomes(command_id)) >= count)
        return [r.body for r in self.outcomes(command_id)]

    async def errors_of(self, body: dict[str, Any]) -> list[tuple[str, str | None]]:
        """Send a command that must be refused; (error_code, field) of every error."""
        first = await self.send_and_wait(body)
        assert first.topic == self.topics.rejections, f"accepted: {first.body}"
        return [(e["error_code"], e["field"]) for e in first.body["errors"]]


def assert_cloudevent(
    headers: Mapping[str, bytes], key: bytes | None, value: bytes | None, source: str
) -> BaseCloudEvent:
    """A published event or movement, read with the CloudEvents SDK's Kafka binding (binary
    content mode), must be a valid CloudEvent that says what its body says: id, type, time and
    subject, from `source`, with the body as its data."""
    assert value is not None, "an event or movement is never a tombstone"
    names = {name for name in headers if name.startswith("ce_")} | ({CONTENT_TYPE} & set(headers))
    assert names == set(CLOUDEVENTS), f"CloudEvents headers {sorted(names)}"
    # The SDK checks the required attributes, the spec version and that the time is aware.
    event = from_binary(KafkaMessage(dict(headers), key, value), JSONFormat(), CloudEvent)
    body = json.loads(value)
    assert event.get_data() == body
    assert event.get_datacontenttype() == JSON_CONTENT_TYPE
    assert event.get_source() == source
    assert source.startswith(f"{CLOUDEVENTS_SOURCE_ROOT}/")
    assert source.isascii(), "a URI reference"
    assert source.isprintable(), "a URI reference"
    assert " " not in source, "a URI reference"
    if "movement_id" in body:
        expected = (
            body["movement_id"],
            CLOUDEVENTS_MOVEMENT_TYPE,
            f"{body['warehouse_id']}/{body['sku']}",
        )
    else:
        expected = (body["event_id"], body["type"], (key or b"").decode())
    assert (event.get_id(), event.get_type(), event.get_subject()) == expected
    # RFC 3339 and the very text of the body's occurred_at.
    assert headers["ce_time"].decode() == body["occurred_at"]
    assert event.get_time() == datetime.fromisoformat(body["occurred_at"])
    return event


def assert_cloudevents(probe: WireProbe, family: str) -> int:
    """Every event and movement the probe has read carries valid CloudEvents headers; how many
    were checked."""
    events = probe.on(probe.topics.events)
    movements = probe.on(probe.movements_topic)
    for record in events:
        assert_cloudevent(record.headers, record.raw_key, record.value, cloudevents_source(family))
    for record in movements:
        assert_cloudevent(record.headers, record.raw_key, record.value, CLOUDEVENTS_MOVEMENT_SOURCE)
    return len(events) + len(movements)


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[None]:
    """The real service in this process: FastStream app, relay and all, without the HTTP server."""
    app = create_app(settings)
    async with app.start_lifespan_context():
        yield


def service_env(s: Settings) -> dict[str, str]:
    """The environment that gives a child process (the service, the CLI) these settings."""
    master = (
        {"MASTER_KEY": s.master_key.get_secret_value()}
        if s.master_key is not None
        else {"MASTER_KEY_FILE": str(s.master_key_file)}
    )
    return {
        **os.environ,
        "DATABASE_URL": s.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "KAFKA_IDEMPOTENT_PRODUCER": str(s.kafka_idempotent_producer).lower(),
        "TOPIC_PREFIX": s.topic_prefix,
        "CONSUMER_GROUP": s.consumer_group,
        "HEALTH_PORT": str(s.health_port),
        "RELAY_POLL_INTERVAL_SECONDS": str(s.relay_poll_interval_seconds),
        "KAFKA_SESSION_TIMEOUT_MS": str(s.kafka_session_timeout_ms),
        **{
            name.upper(): str(value)
            for name in (
                "topic_partitions",
                "topic_replication_factor",
                "topic_min_insync_replicas",
                "topic_commands_retention_hours",
                "topic_outcomes_retention_hours",
                "topic_dead_letters_retention_hours",
                "inbox_retention_hours",
            )
            if (value := getattr(s, name)) is not None
        },
        "READY_MAX_BATCH_SECONDS": str(s.ready_max_batch_seconds),
        "LOG_FORMAT": s.log_format,
        "MIGRATE_ON_START": str(s.migrate_on_start).lower(),
        "RELAY_IN_PROCESS": str(s.relay_in_process).lower(),
        "PUBLISH_FROM_MEMORY": str(s.publish_from_memory).lower(),
        "OUTBOX_SWEEP_AFTER_SECONDS": str(s.outbox_sweep_after_seconds),
        "DOCUMENT_CACHE_MIB": str(s.document_cache_mib),
        **master,
        "AUTH_MODE": s.auth_mode.value,
        "AUTH_ALLOW_CLAIMED_ACTORS": str(s.auth_allow_claimed_actors).lower(),
        "AUTH_ISSUERS": s.auth_issuers,
        **({"AUTH_KEYS_FILE": str(s.auth_keys_file)} if s.auth_keys_file else {}),
    }


class ServiceProcess:
    """The service (or another long-running command, e.g. `relay`) as a separate OS process,
    so tests can kill it for real."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        log_level: str = "WARNING",
        command: Sequence[str] = ("serve",),
        module: str = "service",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`module` runs instead of the service's own entry point (tests/crash_points.py),
        with `env` added to the environment the settings give."""
        self._command = tuple(command)
        self._module = module
        self._extra_env = dict(env or {})
        self._log_level = log_level
        self._settings = settings
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**service_env(self._settings), "LOG_LEVEL": self._log_level, **self._extra_env}
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", self._module, *self._command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # A test run killed outright (its fixtures never stop anything) leaves no
                # service behind restarting its relay: it is stopped as SIGTERM stops it.
                preexec_fn=die_with_parent(signal.SIGTERM),
            )

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited, else None."""
        return self._process.poll() if self._process is not None else None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no offset commit runs."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(10)

    def stop(self) -> None:
        if self._process is not None:
            stop_server(self._process, signal.SIGTERM, timeout=20)

    def terminate(self, grace_seconds: float) -> float:
        """SIGTERM, as Kubernetes stops a pod: the seconds until the process exited, or
        AssertionError (after SIGKILL) when it was still running after `grace_seconds`."""
        assert self._process is not None
        started = time.monotonic()
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
            raise AssertionError(f"still running {grace_seconds} s after SIGTERM") from None
        return time.monotonic() - started

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-5000:]


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET a path of a service's health server: (status, body); (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; for state outside this process (rows, a relay's status)."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.05)


async def until_ready(port: int, timeout: float = 60.0, what: str = "ready") -> None:
    """Wait until the service whose health server is on `port` answers /health/ready with 200."""
    await eventually(lambda: http_get(port, "/health/ready")[0] == 200, timeout, what)


async def committed_offsets(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """The offsets the consumer group has committed on `topic`, per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        offsets = {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        await consumer.stop()
    return {p: o for p, o in offsets.items() if o is not None}


async def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        """The JSON documents `send` printed, one after another."""
        decoder, text, found = json.JSONDecoder(), self.stdout.strip(), []
        while text:
            document, end = decoder.raw_decode(text)
            found.append(document)
            text = text[end:].strip()
        return found


async def order_service(settings: Settings, *args: str) -> Run:
    env = service_env(settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())
