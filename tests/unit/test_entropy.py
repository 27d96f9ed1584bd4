"""The kernel's random bytes, read a block at a time: each byte handed out once, in this process
and in a forked child."""

from __future__ import annotations

import os

import pytest

from service.adapters.entropy import BLOCK_BYTES, RandomBytes, random_bytes


def test_bytes_come_in_the_size_asked_for_and_never_twice() -> None:
    source = RandomBytes()
    sizes = [12, 16, 32, 1, BLOCK_BYTES, 16] * 300
    taken = [source.take(size) for size in sizes]
    assert [len(chunk) for chunk in taken] == sizes
    # Chunks of 12 bytes or more from a fair generator never repeat: a repeat is a chunk
    # handed out twice.
    wide = [chunk for chunk in taken if len(chunk) >= 12]
    assert len(set(wide)) == len(wide)


def test_a_block_is_read_only_when_the_last_one_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def counted(size: int) -> bytes:
        reads.append(size)
        return real(size)

    source = RandomBytes()
    monkeypatch.setattr(os, "urandom", counted)
    for _ in range(BLOCK_BYTES // 16 * 3):
        source.take(16)
    assert reads == [BLOCK_BYTES] * 3


def test_a_forked_child_never_makes_its_parents_bytes() -> None:
    random_bytes(16)  # the parent is part-way through a block
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits
        try:
            os.write(writer, b"".join(random_bytes(16) for _ in range(8)))
        finally:
            os._exit(0)
    os.close(writer)
    try:
        childs = os.read(reader, 8 * 16)
    finally:
        os.close(reader)
        os.waitpid(child, 0)
    parents = b"".join(random_bytes(16) for _ in range(8))
    assert len(childs) == 8 * 16
    assert {childs[i : i + 16] for i in range(0, 128, 16)}.isdisjoint(
        {parents[i : i + 16] for i in range(0, 128, 16)}
    )
