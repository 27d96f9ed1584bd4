"""Kafka headers as one bytea value of the outbox: names and values are untrusted bytes, so they
are stored as bytes (Postgres text and jsonb refuse NUL), each prefixed by its length."""

from __future__ import annotations

import struct
from collections.abc import Sequence

_LENGTH = struct.Struct(">I")


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes:
    parts: list[bytes] = []
    for name, value in headers:
        for field in (name.encode("utf-8", "surrogatepass"), value):
            parts += (_LENGTH.pack(len(field)), field)
    return b"".join(parts)


def decode_headers(encoded: bytes) -> list[tuple[str, bytes]]:
    fields = []
    position = 0
    while position < len(encoded):
        (length,) = _LENGTH.unpack_from(encoded, position)
        position += _LENGTH.size
        fields.append(encoded[position : position + length])
        position += length
    return [
        (name.decode("utf-8", "surrogatepass"), value)
        for name, value in zip(fields[::2], fields[1::2], strict=True)
    ]
