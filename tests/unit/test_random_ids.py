"""Ids: what uuid.uuid4() and uuid.uuid5() make, in a type asyncpg writes without conversion."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from service.adapters.random_ids import name_based_uuid, random_uuid


def test_a_random_uuid_is_a_version_4_uuid_like_any_other() -> None:
    for _ in range(1000):
        made = random_uuid()
        assert isinstance(made, uuid.UUID)
        assert made.version == 4
        assert made.variant == uuid.RFC_4122
        plain = uuid.UUID(str(made))
        assert made == plain
        assert hash(made) == hash(plain)
        assert (made.bytes, made.int, made.hex) == (plain.bytes, plain.int, plain.hex)
        assert {made: 1}[plain] == 1


def test_random_uuids_do_not_repeat() -> None:
    assert len({random_uuid() for _ in range(100_000)}) == 100_000


@given(namespace=st.uuids(), name=st.text())
def test_a_name_based_uuid_is_the_one_uuid5_makes(namespace: uuid.UUID, name: str) -> None:
    made = name_based_uuid(namespace, name)
    assert made == uuid.uuid5(namespace, name)
    assert (made.version, made.variant) == (5, uuid.RFC_4122)
    assert name_based_uuid(random_uuid(), name).version == 5  # from asyncpg's UUIDs too
