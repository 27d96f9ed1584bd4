"""Kafka headers as one bytea value of the outbox: names and values are untrusted bytes, so they
are stored as bytes (Postgres text and jsonb refuse NUL), each prefixed by its length.

Every outcome carries about ten headers whose names are a handful of constants, encoded for
the outbox by the service and decoded by the relay: each side keeps the names it has met in
their other form. Both caches are bounded, since a dead letter keeps the header names its sender
chose."""

from __future__ import annotations

import struct
from collections.abc import Sequence

_LENGTH = struct.Struct(">I")
_KNOWN_NAMES = 256
"""Most names each cache keeps: the service's own, with room for a few dozen of senders'."""
_LONGEST_KNOWN = 64
"""Longer names are coded each time: a sender's name can be a megabyte, which no cache keeps."""

_encoded_names: dict[str, bytes] = {}
"""A header name -> its length prefix and UTF-8 bytes."""
_decoded_names: dict[bytes, str] = {}
"""The other way."""


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    pack = _LENGTH.pack
    for name, value in headers:
        prefixed = _encoded_names.get(name)
        if prefixed is None:
            encoded = name.encode("utf-8", "surrogatepass")
            prefixed = pack(len(encoded)) + encoded
            if len(_encoded_names) < _KNOWN_NAMES and len(encoded) <= _LONGEST_KNOWN:
                _encoded_names[name] = prefixed
        append(prefixed)
        append(pack(len(value)))
        append(value)
    return b"".join(parts)


def decode_headers(encoded: bytes) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = []
    unpack = _LENGTH.unpack_from
    size = _LENGTH.size
    position, end = 0, len(encoded)
    while position < end:
        (length,) = unpack(encoded, position)
        start, position = position + size, position + size + length
        raw_name = bytes(encoded[start:position])
        name = _decoded_names.get(raw_name)
        if name is None:
            name = raw_name.decode("utf-8", "surrogatepass")
            if len(_decoded_names) < _KNOWN_NAMES and length <= _LONGEST_KNOWN:
                _decoded_names[raw_name] = name
        if position + size > end:
            raise ValueError("encoded headers end after a name, without its value")
        (length,) = unpack(encoded, position)
        start, position = position + size, position + size + length
        if position > end:
            raise ValueError("encoded headers end inside a value")
        headers.append((name, encoded[start:position]))
    return headers
