"""Which topics exist on the cluster, for the reply topics senders name.

A reply is published through the outbox in order with everything else; one for a topic that
does not exist would hold the relay up (or, where brokers create topics on first use, create
any topic a sender names). So a command whose reply topic does not exist is refused before it
is decided, and this is how the processor knows: a cached list of topic names, listed again
when a name it does not know comes (at most every REFRESH_INTERVAL_SECONDS, however many unknown
names senders try) and when it is older than KNOWN_FOR_SECONDS (so that a deleted topic is
forgotten; a reply that reaches one anyway is given up by the relay).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

from aiokafka.admin import AIOKafkaAdminClient

from service.adapters.kafka_connection import KafkaConnection

REFRESH_INTERVAL_SECONDS = 0.25
KNOWN_FOR_SECONDS = 30.0


class KafkaTopicDirectory:
    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._known: set[str] = set()
        self._refreshed_at = float("-inf")
        self._refreshing = asyncio.Lock()
        self._admin: AIOKafkaAdminClient | None = None

    async def existing(self, topics: Collection[str]) -> set[str]:
        """Those of `topics` that exist, as the cluster last listed them."""
        age = time.monotonic() - self._refreshed_at
        if age >= KNOWN_FOR_SECONDS or (
            set(topics) - self._known and age >= REFRESH_INTERVAL_SECONDS
        ):
            async with self._refreshing:
                if time.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_SECONDS:
                    await self._refresh()
        return set(topics) & self._known

    async def _refresh(self) -> None:
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**self._connection.client_options("admin"))
            await self._admin.start()
        self._known = set(await self._admin.list_topics())
        self._refreshed_at = time.monotonic()

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
