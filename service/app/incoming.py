"""A consumed Kafka record, independent of the client library that fetched it."""

from __future__ import annotations

from service.domain.values import frozen


@frozen
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def source(self) -> str:
        """Where the record came from; identifies it when its body has no readable command_id."""
        return f"{self.topic}/{self.partition}/{self.offset}@{self.timestamp_ms}"
