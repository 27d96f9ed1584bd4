"""An async client for services that send commands: typed commands in, typed outcomes out.

    async with CommandClient("kafka:9092", tenant_id="acme") as client:
        outcome = await client.purchase_orders.create("PO-1", details)
        if isinstance(outcome, Refused):
            print(outcome.errors)

One producer and one consumer serve every request, however many run at once. A request waits
for its command's outcome on the events, rejections (or, for a dry run, previews) topics. On
timeout it raises CommandTimeout carrying the command: sending that same command again is safe,
because the service decides a command_id once. The client remembers the outcomes it has seen,
so a retry whose first attempt was decided meanwhile still gets its answer.

An answer is matched on the command_id, the tenant and the document id together: an outcome
of somebody else's command that happens to use the same command_id (in another tenant, or for
another document) is never taken for this one's.

Where the service verifies tokens, pass `token_for`: it is called with each command and returns
a token bound to it (its `jti` is the command_id), so a token copied off the commands topic can
carry no other command.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from contracts.common import ErrorDetail
from contracts.headers import AUTHORIZATION, BEARER_SCHEME
from contracts.previews import OrderPreview, PreviewMetadata, PurchaseOrderPreview
from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics

from contracts import orders as o
from contracts import purchase_orders as po

Command = po.PurchaseOrderCommandMessage | o.OrderCommandMessage
Event = po.PurchaseOrderEventMessage | o.OrderEventMessage
Rejection = po.PurchaseOrderRejection | o.OrderRejection
REMEMBERED_OUTCOMES = 10_000
CUSTOMER_REDACTED = "customer.redacted"
REDACT = "customer.redact"
ID_FIELDS = ("purchase_order_id", "order_id", "customer_id")
"""The document id of every answer is one of these (customer.redact is keyed by customer)."""

Request = tuple[UUID, str, str]
"""What an answer is matched on: (command_id, tenant_id, document id)."""


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
    events: tuple[Event, ...]
    """Every event the command caused, in version order."""
    accepted: Literal[True] = True


@dataclass(frozen=True)
class Refused:
    command_id: UUID
    rejection: Rejection
    accepted: Literal[False] = False

    @property
    def errors(self) -> list[ErrorDetail]:
        return self.rejection.errors


@dataclass(frozen=True)
class Previewed:
    """The answer to a dry run: what the command would do; nothing changed."""

    command_id: UUID
    preview: PreviewMetadata

    @property
    def would_accept(self) -> bool:
        return self.preview.would_accept


Outcome = Accepted | Refused | Previewed


class CommandTimeout(TimeoutError):
    """No outcome in time. `command` may be sent again as it is: it is decided at most once."""

    def __init__(self, command: Command, seconds: float) -> None:
        super().__init__(f"no outcome for {command.type} {command.command_id} within {seconds}s")
        self.command = command


@dataclass(frozen=True)
class _Family:
    topics: DocumentTopics
    events: Any
    rejection: type[Rejection]
    preview: type[PreviewMetadata]


class CommandClient:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        tenant_id: str,
        topic_prefix: str = "",
        token_for: Callable[[Command], str] | None = None,
        timeout_seconds: float = 30.0,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`token_for`: the actor token to send a command with, bound to that command.
        `kafka_options`: further aiokafka options (security_protocol, ssl_context, sasl_*) for
        producer and consumer alike."""
        self.tenant_id = tenant_id
        self._token_for = token_for
        self._timeout = timeout_seconds
        self._options = {"bootstrap_servers": bootstrap_servers, **(kafka_options or {})}
        self._families = {
            PURCHASE_ORDERS: _Family(
                DocumentTopics.for_family(PURCHASE_ORDERS, topic_prefix),
                po.PURCHASE_ORDER_EVENT,
                po.PurchaseOrderRejection,
                PurchaseOrderPreview,
            ),
            ORDERS: _Family(
                DocumentTopics.for_family(ORDERS, topic_prefix),
                o.ORDER_EVENT,
                o.OrderRejection,
                OrderPreview,
            ),
        }
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[Request, list[asyncio.Future[Outcome]]] = {}
        self._collecting: dict[tuple[UUID, str], list[tuple[str, Event]]] = {}
        """Events read, by (command_id, tenant): each with its document id."""
        self._types: dict[Request, str] = {}
        self._seen: OrderedDict[Request, Outcome] = OrderedDict()
        self.purchase_orders = PurchaseOrderCommands(self)
        self.orders = OrderCommands(self)

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self._options, acks="all", linger_ms=2)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False)
        await self._consumer.start()
        await self._consumer.topics()
        answers = [
            TopicPartition(topic, partition)
            for family in self._families.values()
            for topic in (family.topics.events, family.topics.rejections, family.topics.previews)
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        wanted = {
            topic
            for family in self._families.values()
            for topic in (family.topics.events, family.topics.rejections, family.topics.previews)
        }
        missing = sorted(wanted - {tp.topic for tp in answers})
        if missing:
            await self.stop()
            raise LookupError(
                f"topics {', '.join(missing)} do not exist yet: the service creates them when it"
                " starts"
            )
        self._consumer.assign(answers)
        await self._consumer.seek_to_end(*answers)
        for tp in answers:
            await self._consumer.position(tp)  # outcomes of commands sent from now on
        self._reader = asyncio.create_task(self._read(), name="command-client-outcomes")

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
        """Send and wait for the outcome; raises CommandTimeout (safe to send again)."""
        request = _request(command)
        seen = self._seen.get(request)
        if seen is not None:
            return seen
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(request, []).append(future)
        self._types[request] = command.type
        seconds = timeout_seconds if timeout_seconds is not None else self._timeout
        try:
            await self.send_no_wait(command)
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            raise CommandTimeout(command, seconds) from None
        finally:
            waiting = self._waiting.get(request, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiting.pop(request, None)
                self._types.pop(request, None)

    async def send_no_wait(self, command: Command) -> None:
        """Send and return once the broker has it; the outcome is not awaited."""
        assert self._producer is not None, "start the client first"
        family = self._families[_family_of(command)]
        headers = []
        if self._token_for is not None:
            token = self._token_for(command)
            headers.append((AUTHORIZATION, f"{BEARER_SCHEME} {token}".encode()))
        await self._producer.send_and_wait(
            family.topics.commands,
            command.model_dump_json(exclude_unset=True).encode(),
            key=_document_id(command).encode(),
            headers=headers or None,
        )

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    try:
                        self._take(record.topic, record.value)
                    except (ValueError, KeyError, TypeError):
                        # Not an answer of the contract (ValidationError is a ValueError): it
                        # answers nobody, and must not stop the answers behind it.
                        continue
            # An accepted command's events are published together: answer once the fetch that
            # brought them is read.
            self._settle_events()

    def _settle_events(self) -> None:
        """Answer with the events read: per document, or for a customer.redact, which touches
        many orders (many partitions), all of them once its receipt (the customer.redacted
        naming the customer) has come; it comes last. Outcomes nobody waits for are remembered
        too, so a retry of a command decided meanwhile gets its answer."""
        for key, collected in list(self._collecting.items()):
            redacts = [r for r, kind in self._types.items() if r[:2] == key and kind == REDACT]
            if redacts:
                receipts = {doc for doc, event in collected if event.type == CUSTOMER_REDACTED}
                for request in redacts:
                    if request[2] in receipts:
                        self._answer(request, Accepted(key[0], tuple(e for _, e in collected)))
                        self._collecting.pop(key, None)
                continue
            for doc in dict.fromkeys(doc for doc, _ in collected):
                events = tuple(event for d, event in collected if d == doc)
                self._answer((*key, doc), Accepted(key[0], events))
            del self._collecting[key]

    def _take(self, topic: str, value: bytes | None) -> None:
        body = json.loads(value or b"{}")
        command_id = UUID(body["command_id"])
        tenant_id = str(body["tenant_id"])
        document_id = str(next(body[name] for name in ID_FIELDS if body.get(name) is not None))
        request = (command_id, tenant_id, document_id)
        for family in self._families.values():
            if topic == family.topics.events:
                event = family.events.validate_python(body)
                events = self._collecting.setdefault((command_id, tenant_id), [])
                events.append((document_id, event))
            elif topic == family.topics.rejections:
                rejection = family.rejection.model_validate(body)
                self._answer(request, Refused(command_id, rejection))
            elif topic == family.topics.previews:
                preview = family.preview.model_validate(body)
                self._answer(request, Previewed(command_id, preview))

    def _answer(self, request: Request, outcome: Outcome) -> None:
        if not isinstance(outcome, Previewed):
            self._seen[request] = outcome
            while len(self._seen) > REMEMBERED_OUTCOMES:
                self._seen.popitem(last=False)
        for future in self._waiting.pop(request, []):
            if not future.done():
                future.set_result(outcome)


def _request(command: Command) -> Request:
    return (command.command_id, command.tenant_id, _document_id(command))


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
