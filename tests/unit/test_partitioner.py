"""The publishers' partitioner puts every key where aiokafka's default (and Java's) puts it: a
document's messages keep one partition, and so their order, whoever produces them."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from service.adapters.kafka import KeyHashPartitioner, murmur2

partitioner = KeyHashPartitioner()


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=50), st.integers(1, 64))
def test_every_key_lands_where_the_default_partitioner_puts_it(
    keys: list[bytes], partitions: int
) -> None:
    all_partitions = list(range(partitions))
    for key in keys:
        assert partitioner(key, all_partitions, all_partitions) == DefaultPartitioner()(
            key, all_partitions, all_partitions
        )


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    assert partitioner(None, [0, 1, 2], [2]) == 2


def test_a_long_key_lands_where_the_default_partitioner_puts_it() -> None:
    partitions = list(range(12))
    key = b"k" * 4096
    assert partitioner(key, partitions, partitions) == DefaultPartitioner()(
        key, partitions, partitions
    )


@given(st.binary(max_size=300))
def test_murmur2_is_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_keys_land_where_javas_producer_puts_them() -> None:
    # Partitions of 1,000 for these keys under Java's Utils.murmur2, the compatibility values
    # kafka-python's partitioner tests check.
    keys = [b"", b"a", b"ab", b"abc", b"123456789", b"\x00 "]
    partitions = list(range(1000))
    chosen = [KeyHashPartitioner()(key, partitions, partitions) for key in keys]
    assert chosen == [681, 524, 434, 107, 566, 742]
