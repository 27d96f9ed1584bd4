"""The outbox's header codec: any names and values, surrogates and NUL included, come back as
they went in, in order and with repeats; the bytes are the length-prefixed layout rows already
stored hold, so rows written before a change still decode."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.adapters import headers as headers_module
from service.adapters.headers import decode_headers, encode_headers

Headers = list[tuple[str, bytes]]

names = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
headers = st.lists(st.tuples(names, st.binary(max_size=64)), max_size=12)


def stored_layout(items: Headers) -> bytes:
    """The layout, written out the plain way: length and UTF-8 (surrogates kept) of each name,
    then length and bytes of its value."""
    out = b""
    for name, value in items:
        raw = name.encode("utf-8", "surrogatepass")
        out += struct.pack(">I", len(raw)) + raw + struct.pack(">I", len(value)) + value
    return out


@given(headers)
def test_headers_come_back_as_they_went_in(items: Headers) -> None:
    encoded = encode_headers(items)
    assert encoded == stored_layout(items)
    assert decode_headers(encoded) == items
    assert decode_headers(encoded) == items  # the second time from the caches


def test_many_distinct_names_are_still_coded_right_after_the_caches_fill() -> None:
    items = [(f"sender-header-{n}\udc80", bytes([n % 256])) for n in range(2000)]
    assert decode_headers(encode_headers(items)) == items


def test_a_name_without_its_value_or_a_value_cut_short_is_refused() -> None:
    with pytest.raises(ValueError, match="without its value"):
        decode_headers(struct.pack(">I", 2) + b"ab")
    with pytest.raises(ValueError, match="inside a value"):
        decode_headers(struct.pack(">I", 1) + b"a" + struct.pack(">I", 5) + b"ab")


def test_a_long_name_is_coded_right_and_kept_by_no_cache() -> None:
    name = "x" * 100_000
    kept = (len(headers_module._encoded_names), len(headers_module._decoded_names))
    assert decode_headers(encode_headers([(name, b"v")])) == [(name, b"v")]
    assert (len(headers_module._encoded_names), len(headers_module._decoded_names)) == kept
