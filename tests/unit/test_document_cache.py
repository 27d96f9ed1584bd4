"""The committed documents a process holds: by kind and key, at one version each, the least
recently used going first."""

from __future__ import annotations

from service.adapters.document_cache import CommittedDocuments

A, B, C = ("t", "A"), ("t", "B"), ("t", "C")


def test_a_document_is_found_at_the_version_it_was_remembered_at() -> None:
    cache = CommittedDocuments(10)
    cache.remember("po", [(A, 1, "a1"), (B, 3, "b3")])
    assert cache.lookup("po", [A, B, C]) == {A: (1, "a1"), B: (3, "b3")}
    assert cache.lookup("other kind", [A, B]) == {}


def test_a_later_version_replaces_an_earlier_one_and_never_the_reverse() -> None:
    cache = CommittedDocuments(10)
    cache.remember("po", [(A, 1, "a1"), (A, 2, "a2")])
    # A transaction that read version 1 may commit after the one that wrote version 2.
    cache.remember("po", [(A, 1, "a1")])
    assert cache.lookup("po", [A]) == {A: (2, "a2")}


def test_the_least_recently_used_goes_first() -> None:
    cache = CommittedDocuments(2)
    cache.remember("po", [(A, 1, "a"), (B, 1, "b")])
    assert cache.lookup("po", [A]) == {A: (1, "a")}  # A used last: B goes first
    cache.remember("po", [(C, 1, "c")])
    assert cache.lookup("po", [A, B, C]) == {A: (1, "a"), C: (1, "c")}
    assert len(cache) == 2


def test_forgotten_documents_and_a_capacity_of_nothing_hold_nothing() -> None:
    cache = CommittedDocuments(10)
    cache.remember("po", [(A, 1, "a"), (B, 1, "b")])
    cache.forget("po", [A, C])
    assert cache.lookup("po", [A, B]) == {B: (1, "b")}
    off = CommittedDocuments(0)
    off.remember("po", [(A, 1, "a")])
    assert off.lookup("po", [A]) == {}
    assert len(off) == 0
