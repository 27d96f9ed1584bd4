"""An async client for services that send commands: typed commands in, typed outcomes out.

    async with CommandClient("kafka:9092", tenant_id="acme") as client:
        outcome = await client.purchase_orders.create("PO-1", details)
        if isinstance(outcome, Refused):
            print(outcome.errors)

Every command is sent with the Kafka request/reply headers: `reply_to`, the client's reply
topic, and `correlation_id`, new for every send. The service answers each copy of a command it
reads with one reply there (contracts.replies): so the client reads its reply topic only, never
another tenant's events, and needs read access to nothing else. The reply topic defaults to
`replies.<tenant_id>`, shared by the tenant's clients, each taking the replies whose
correlation_id it issued; give a client a topic of its own with `reply_topic=
"replies.<tenant_id>_<name>"`.

On timeout `send` raises CommandTimeout carrying the command: sending that same command again,
from this process or a new one, is safe, because the service decides a command_id once and
answers a re-send with the outcome it decided the first time (`repeat` is then true).

Where the service verifies tokens, pass `token_for`: it is called with each command and returns
a token bound to it (its `jti` is the command_id), so a token copied off the commands topic can
carry no other command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import orders as o
from contracts import purchase_orders as po
from contracts.common import ErrorDetail
from contracts.headers import AUTHORIZATION, BEARER_SCHEME, CORRELATION_ID, REPLY_TO
from contracts.previews import PreviewMetadata
from contracts.readers import Unrecognised, read, read_preview, read_reply
from contracts.replies import EventReceipt, request_digest
from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics

log = logging.getLogger(__name__)
TOPIC_SEEN_AFTER_SECONDS = 0.5
DEFAULT_CLIENT_ID = "order-lifecycle-client"
"""Rather than aiokafka's `aiokafka-<version>`, which every aiokafka application shares."""

Command = po.PurchaseOrderCommandMessage | o.OrderCommandMessage


class SendOptions(TypedDict, total=False):
    """Options of every command method."""

    command_id: UUID
    """Default: a new one. Pass the same to send a command again safely."""
    expected_version: int
    """The document's current version (0: must not exist yet)."""
    dry_run: bool
    """Answer with a preview of what it would do; change nothing."""
    timeout_seconds: float


@dataclass(frozen=True)
class Accepted:
    command_id: UUID
    events: tuple[EventReceipt, ...]
    """Every event the command caused, in order, by id, type and version (their data is on
    the events topic)."""
    repeat: bool = False
    """The command had been decided before: this is that outcome again."""
    accepted: Literal[True] = True

    @property
    def version(self) -> int | None:
        """The document's version after the command (of its last event)."""
        return self.events[-1].version if self.events else None


@dataclass(frozen=True)
class Refused:
    command_id: UUID
    errors: tuple[ErrorDetail, ...]
    """The problems found (at most 20; `errors_omitted` more on the rejections topic)."""
    outcome: str = "rejected"
    """rejected (a rule, the token gate, a reused command_id), dead_lettered (invalid) or
    parked (could not be processed), or one a later contract added; in none of them did
    anything change."""
    repeat: bool = False
    errors_omitted: int = 0
    unrecognised: tuple[Unrecognised, ...] = ()
    """Errors a later contract version wrote with values this one does not know (a new
    error_code, say), handed over whole."""
    accepted: Literal[False] = False


@dataclass(frozen=True)
class Previewed:
    """The answer to a dry run: what the command would do; nothing changed."""

    command_id: UUID
    preview: PreviewMetadata | Unrecognised
    """Unrecognised when a later contract version wrote values this one does not know."""

    @property
    def would_accept(self) -> bool:
        if isinstance(self.preview, Unrecognised):
            return self.preview.raw.get("would_accept") is True
        return self.preview.would_accept


Outcome = Accepted | Refused | Previewed


class CommandTimeout(TimeoutError):
    """No outcome in time. `command` may be sent again as it is: it is decided at most once."""

    def __init__(self, command: Command, seconds: float) -> None:
        super().__init__(f"no outcome for {command.type} {command.command_id} within {seconds}s")
        self.command = command


class ReplyMismatch(ValueError):
    """A reply that carries one of this client's correlation_ids but answers another command,
    or another copy of it: not taken. (Correlation ids are visible to whoever reads the
    commands topic; the request digest is what ties a reply to the record this client sent.)"""


@dataclass
class _Request:
    command: Command
    future: asyncio.Future[Outcome]
    digest: str
    """request_digest of the record sent: a reply to any other copy is not taken."""


class CommandClient:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        tenant_id: str,
        topic_prefix: str = "",
        reply_topic: str | None = None,
        create_reply_topic: bool = True,
        token_for: Callable[[Command], str] | None = None,
        timeout_seconds: float = 30.0,
        client_id: str = DEFAULT_CLIENT_ID,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`reply_topic`: where the service sends this client's replies; default
        `<topic_prefix>replies.<tenant_id>`. `create_reply_topic`: create it when missing (needs
        the right to create topics; else create it beforehand). `token_for`: the actor token to
        send a command with, bound to that command. `client_id`: the name its Kafka clients
        give the brokers (logs, quotas); name your service, else every sender looks alike.
        `kafka_options`: further aiokafka options (security_protocol, ssl_context, sasl_*) for
        every Kafka client it opens."""
        self.tenant_id = tenant_id
        self.reply_topic = reply_topic or f"{topic_prefix}replies.{tenant_id}"
        self._create_reply_topic = create_reply_topic
        self._token_for = token_for
        self._timeout = timeout_seconds
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            **(kafka_options or {}),
        }
        self._commands = {
            family: DocumentTopics.for_family(family, topic_prefix).commands
            for family in (PURCHASE_ORDERS, ORDERS)
        }
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, _Request] = {}
        """Requests waiting for their reply, by the correlation_id they were sent with."""
        self.purchase_orders = PurchaseOrderCommands(self)
        self.orders = OrderCommands(self)

    async def start(self) -> None:
        if self._create_reply_topic:
            await self._ensure_reply_topic()
        self._producer = AIOKafkaProducer(**self._options, acks="all", linger_ms=2)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False)
        await self._consumer.start()
        await self._consumer.topics()
        partitions = [
            TopicPartition(self.reply_topic, partition)
            for partition in sorted(self._consumer.partitions_for_topic(self.reply_topic) or ())
        ]
        if not partitions:
            await self.stop()
            raise LookupError(f"the reply topic {self.reply_topic} does not exist")
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)  # replies to commands sent from now on
        self._reader = asyncio.create_task(self._read(), name="command-client-replies")

    async def _ensure_reply_topic(self) -> None:
        admin = AIOKafkaAdminClient(**self._options)
        await admin.start()
        try:
            if self.reply_topic in await admin.list_topics():
                return
            await admin.create_topics(
                [NewTopic(self.reply_topic, num_partitions=3, replication_factor=1)]
            )
        except TopicAlreadyExistsError:
            return  # another client of the tenant created it meanwhile
        finally:
            await admin.close()
        # The service checks that reply topics exist from a list it refreshes at most four
        # times a second: give it the time to see a topic this new.
        await asyncio.sleep(TOPIC_SEEN_AFTER_SECONDS)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for client in (self._producer, self._consumer):
            if client is not None:
                await client.stop()

    async def __aenter__(self) -> CommandClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def envelope(self, command_id: UUID | None, expected_version: int | None) -> dict[str, Any]:
        """The fields every command carries, filled in."""
        body: dict[str, Any] = {
            "command_id": command_id or uuid4(),
            "tenant_id": self.tenant_id,
            "issued_at": datetime.now(UTC),
        }
        if expected_version is not None:
            body["expected_version"] = expected_version
        return body

    async def send(self, command: Command, *, timeout_seconds: float | None = None) -> Outcome:
        """Send and wait for the reply; raises CommandTimeout (safe to send again)."""
        correlation = uuid4().hex.encode()
        key, value = _record(command)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = _Request(command, future, request_digest(key, value))
        seconds = timeout_seconds if timeout_seconds is not None else self._timeout
        headers = [(REPLY_TO, self.reply_topic.encode()), (CORRELATION_ID, correlation)]
        try:
            await self._send(command, key, value, headers)
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            raise CommandTimeout(command, seconds) from None
        finally:
            self._waiting.pop(correlation, None)

    async def send_no_wait(self, command: Command) -> None:
        """Send and return once the broker has it; no reply is asked for."""
        await self._send(command, *_record(command), [])

    async def _send(
        self, command: Command, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        assert self._producer is not None, "start the client first"
        if self._token_for is not None:
            token = self._token_for(command)
            headers = [*headers, (AUTHORIZATION, f"{BEARER_SCHEME} {token}".encode())]
        await self._producer.send_and_wait(
            self._commands[_family_of(command)], value, key=key, headers=headers or None
        )

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    try:
                        self.take(record.value, record.headers)
                    except ValueError as error:
                        # Not a reply of the contract (ValidationError is a ValueError): it
                        # answers nobody, and must not stop the replies behind it.
                        log.warning("skipped a message on %s: %s", record.topic, error)

    def take(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        """Answer the request a reply is for; replies for other clients are passed over. Read
        tolerantly: a reply from a later contract version answers with what this one knows."""
        correlation = next((v for name, v in headers if name == CORRELATION_ID), None)
        request = self._waiting.get(correlation) if correlation is not None else None
        if request is None or request.future.done():
            return
        reply = read_reply(value or b"")
        raw = reply.raw if isinstance(reply, Unrecognised) else reply.model_dump(mode="json")
        command = request.command
        answered = (str(raw.get("command_id")), raw.get("tenant_id"))
        if answered != (str(command.command_id), command.tenant_id):
            raise ReplyMismatch(
                f"a reply with correlation_id {correlation!r} answers {answered[0]} of"
                f" {answered[1]}, not {command.command_id} of {command.tenant_id}"
            )
        if raw.get("request_digest") != request.digest:
            # Someone who read the command (and its correlation_id) off the commands topic
            # sent a copy of their own (another key, another body): its answer is not ours.
            raise ReplyMismatch(f"a reply with correlation_id {correlation!r} answers another copy")
        request.future.set_result(self._outcome(command, raw))

    def _outcome(self, command: Command, reply: Mapping[str, Any]) -> Outcome:
        """The outcome a reply tells, from its fields (`accepted` decides, whatever `outcome`
        a later version may add)."""
        repeat = reply.get("repeat") is True
        if reply.get("accepted") is True:
            events = tuple(EventReceipt.model_validate(e, extra="ignore") for e in reply["events"])
            return Accepted(command.command_id, events, repeat)
        preview = reply.get("preview")
        if reply.get("outcome") == "previewed" and isinstance(preview, dict):
            read_back = (
                read_preview(preview, "purchase_order")
                if _family_of(command) == PURCHASE_ORDERS
                else read_preview(preview, "order")
            )
            return Previewed(command.command_id, read_back)
        errors = [read(ErrorDetail, error) for error in reply.get("errors", [])]
        return Refused(
            command.command_id,
            tuple(e for e in errors if isinstance(e, ErrorDetail)),
            str(reply.get("outcome")),
            repeat,
            int(reply.get("errors_omitted", 0)),
            tuple(e for e in errors if isinstance(e, Unrecognised)),
        )


def _record(command: Command) -> tuple[bytes, bytes]:
    """The Kafka key and value a command is sent as."""
    return _document_id(command).encode(), command.model_dump_json(exclude_unset=True).encode()


def _family_of(command: Command) -> str:
    return PURCHASE_ORDERS if command.type.startswith("purchase_order.") else ORDERS


def _document_id(command: Command) -> str:
    if isinstance(command, o.RedactCustomer):
        return command.customer_id
    if isinstance(
        command, o.CreateOrder | o.UpdateOrder | o.ChangeOrderStatus | o.DeleteOrder | o.RedactOrder
    ):
        return command.order_id
    return command.purchase_order_id


class PurchaseOrderCommands:
    """One method per purchase-order command."""

    def __init__(self, client: CommandClient) -> None:
        self._client = client

    async def _send(
        self,
        command_type: str,
        purchase_order_id: str,
        payload: Any,
        **options: Unpack[SendOptions],
    ) -> Outcome:
        body = {
            **self._client.envelope(options.get("command_id"), options.get("expected_version")),
            "type": command_type,
            "purchase_order_id": purchase_order_id,
            "payload": payload,
            **({"dry_run": True} if options.get("dry_run") else {}),
        }
        command = po.PURCHASE_ORDER_COMMAND.validate_python(body)
        return await self._client.send(command, timeout_seconds=options.get("timeout_seconds"))

    async def create(
        self,
        purchase_order_id: str,
        payload: po.PurchaseOrderDetails,
        **options: Unpack[SendOptions],
    ) -> Outcome:
        return await self._send("purchase_order.create", purchase_order_id, payload, **options)

    async def update(
        self,
        purchase_order_id: str,
        payload: po.PurchaseOrderDetails,
        **options: Unpack[SendOptions],
    ) -> Outcome:
        return await self._send("purchase_order.update", purchase_order_id, payload, **options)

    async def update_shipping_details(
        self, purchase_order_id: str, payload: po.ShippingDetails, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send(
            "purchase_order.update_shipping_details", purchase_order_id, payload, **options
        )

    async def change_status(
        self, purchase_order_id: str, payload: po.StatusChange, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send(
            "purchase_order.change_status", purchase_order_id, payload, **options
        )

    async def record_receipt(
        self, purchase_order_id: str, payload: po.Receipt, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send(
            "purchase_order.record_receipt", purchase_order_id, payload, **options
        )

    async def link_invoice(
        self, purchase_order_id: str, payload: po.Invoice, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send(
            "purchase_order.link_invoice", purchase_order_id, payload, **options
        )

    async def delete(self, purchase_order_id: str, **options: Unpack[SendOptions]) -> Outcome:
        return await self._send("purchase_order.delete", purchase_order_id, {}, **options)


class OrderCommands:
    """One method per customer-order command."""

    def __init__(self, client: CommandClient) -> None:
        self._client = client

    async def _send(
        self,
        command_type: str,
        id_field: str,
        document_id: str,
        payload: Any,
        **options: Unpack[SendOptions],
    ) -> Outcome:
        body = {
            **self._client.envelope(options.get("command_id"), options.get("expected_version")),
            "type": command_type,
            id_field: document_id,
            "payload": payload,
            **({"dry_run": True} if options.get("dry_run") else {}),
        }
        command = o.ORDER_COMMAND.validate_python(body)
        return await self._client.send(command, timeout_seconds=options.get("timeout_seconds"))

    async def create(
        self, order_id: str, payload: o.OrderDetails, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send("order.create", "order_id", order_id, payload, **options)

    async def update(
        self, order_id: str, payload: o.OrderChanges, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send("order.update", "order_id", order_id, payload, **options)

    async def change_status(
        self, order_id: str, payload: o.OrderStatusChange, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send("order.change_status", "order_id", order_id, payload, **options)

    async def delete(self, order_id: str, **options: Unpack[SendOptions]) -> Outcome:
        return await self._send("order.delete", "order_id", order_id, {}, **options)

    async def redact(
        self, order_id: str, payload: o.Redaction | None = None, **options: Unpack[SendOptions]
    ) -> Outcome:
        return await self._send("order.redact", "order_id", order_id, payload or {}, **options)

    async def redact_customer(
        self,
        customer_id: str,
        payload: o.CustomerRedaction | None = None,
        **options: Unpack[SendOptions],
    ) -> Outcome:
        return await self._send(
            "customer.redact", "customer_id", customer_id, payload or {}, **options
        )
